"""⑥ Learning: the seven contrastive rules, TBP/RBP, gradient estimators, optimizers."""

from analogebl.learning.estimators import contrastive_update, estimate, rule_states
from analogebl.learning.optimizers import (
    OPTIMIZERS,
    SGD,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    layer_learning_rates,
    make_optimizer,
)
from analogebl.learning.orthogonal_optimizers import OrthogonalOptimizer
from analogebl.learning.rules import (
    RULES,
    ContrastiveLearning,
    EquilibriumPropagation,
    RecurrentBackprop,
    Rule,
    TruncatedBackprop,
    make_rule,
)

__all__ = [
    "OPTIMIZERS",
    "RULES",
    "SGD",
    "Adam",
    "ConstantSchedule",
    "ContrastiveLearning",
    "CosineSchedule",
    "EquilibriumPropagation",
    "OrthogonalOptimizer",
    "RecurrentBackprop",
    "Rule",
    "TruncatedBackprop",
    "contrastive_update",
    "estimate",
    "layer_learning_rates",
    "make_optimizer",
    "make_rule",
    "rule_states",
]
