"""⑦ Training: the owner of a training step.

:class:`Trainer` holds the network, the rule and an :class:`Updater` —
:class:`IdealUpdater` (the optimizer writes the weights) or :class:`CrossbarUpdater`
(dW -> pulses -> conductances -> weights read back) — and runs ``step``, ``evaluate`` and
``fit``; its nested ``state_dict`` is what run-file checkpoints hold
(:class:`RunFile`). ``analogebl.pipeline`` builds these objects from a study.
"""

from analogebl.training.runfile import RunFile, config_diff
from analogebl.training.trainer import (
    EpochResult,
    FitOptions,
    Trainable,
    Trainer,
    TrainingResult,
    evaluate,
)
from analogebl.training.updaters import CrossbarUpdater, IdealUpdater, Updater

__all__ = [
    "CrossbarUpdater",
    "EpochResult",
    "FitOptions",
    "IdealUpdater",
    "RunFile",
    "Trainable",
    "Trainer",
    "TrainingResult",
    "Updater",
    "config_diff",
    "evaluate",
]
