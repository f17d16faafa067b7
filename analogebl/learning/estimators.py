"""⑥ Gradient estimators: run a rule's phases on a backend and form its update."""

from __future__ import annotations

from typing import Any

from analogebl.backends.engine import Backend
from analogebl.learning.rules import (
    ContrastiveLearning,
    EquilibriumPropagation,
    RecurrentBackprop,
    Rule,
    TruncatedBackprop,
)

__all__ = ["contrastive_update", "estimate", "rule_states"]

Array = Any


def contrastive_update(
    backend: Backend, state1: list[Array], state2: list[Array], beta1: float, beta2: float
) -> dict[str, Array]:
    """The local contrastive estimate of ``dLoss/dtheta``.

    ``g = [dE/dtheta(s2) - dE/dtheta(s1)] / (beta2 - beta1)``. For a coupling between layers
    ``k-1`` and ``k`` this is ``-[<s_{k-1} s_k>_{s2} - <s_{k-1} s_k>_{s1}] / (beta2 - beta1)``:
    it reads only the node voltages of the two layers the crossbar joins.
    """
    g1 = backend.param_grads(state1)
    g2 = backend.param_grads(state2)
    inv = 1.0 / (beta2 - beta1)
    return {k: (g2[k] - g1[k]) * inv for k in g1}


def rule_states(
    backend: Backend,
    rule: EquilibriumPropagation | ContrastiveLearning,
    free_state: list[Array],
    target: Array,
    schedule: str = "async",
) -> tuple[list[Array], list[Array]]:
    """The rule's two states, each relaxed for ``rule.iterations`` from ``free_state``
    (on ``rule.schedule``, else ``schedule``, the free phase's)."""
    schedule = rule.schedule or schedule
    out = []
    for b in rule.betas:
        if isinstance(rule, EquilibriumPropagation):
            s = backend.relax(
                free_state, rule.iterations, schedule, beta=b,
                target=target if b != 0.0 else None, nudge=rule.nudge,
            )  # fmt: skip
        else:
            o = free_state[-1]
            s = backend.relax(free_state, rule.iterations, schedule, clamp=o + b * (target - o))
        out.append(s)
    return out[0], out[1]


def estimate(
    backend: Backend,
    rule: Rule,
    free_state: list[Array],
    target: Array,
    schedule: str = "async",
    observer=None,
) -> tuple[dict[str, Array], list[Array]]:
    """Estimate ``dLoss/dtheta`` (same sign as the true gradient) with ``rule``.

    Returns the gradient (backend arrays, batch mean) and the state the rule ended in (the
    warm start of the next free phase in training: the second state for the contrastive
    rules, the state after the extra iterations for TBP, the free state for RBP).
    ``observer(free_state, s1, s2, beta1, beta2)``, if given, sees a contrastive rule's
    two states (e.g. an optimizer collecting K-FAC statistics).
    """
    if isinstance(rule, EquilibriumPropagation | ContrastiveLearning):
        s1, s2 = rule_states(backend, rule, free_state, target, schedule)
        b1, b2 = rule.betas
        if observer is not None:
            observer(free_state, s1, s2, b1, b2)
        return contrastive_update(backend, s1, s2, b1, b2), s2
    if isinstance(rule, TruncatedBackprop):
        return backend.tbp_gradient(free_state, target, rule.iterations,
                                    rule.schedule or schedule)  # fmt: skip
    if isinstance(rule, RecurrentBackprop):
        return backend.rbp_gradient(free_state, target, rule.iterations), free_state
    raise TypeError(f"not a rule: {rule!r}")
