"""⑥ Learning rules as data: which phases to run, with which nudging, and the divisor.

Every contrastive rule (CL, P/N/C-EP, P/N/C-CpL) estimates the loss gradient as

.. math::

    \\hat g_\\theta = \\frac{\\partial E/\\partial\\theta(s^{2}) -
                      \\partial E/\\partial\\theta(s^{1})}{\\beta_2 - \\beta_1}

from two states relaxed from the free equilibrium ``s*`` (Scellier et al. 2023, §3.2):

============  ===================  =========================================  =========
rule          (beta1, beta2)       phases                                     divisor
============  ===================  =========================================  =========
P-EP          (0, +b)              F = E + beta C, all layers free            b
N-EP          (-b, 0)              same                                       b
C-EP          (-b, +b)             same                                       2b
P-CpL         (0, +b)              output clamped at o* + beta (y - o*)       b
N-CpL         (-b, 0)              same                                       b
C-CpL         (-b, +b)             same                                       2b
CL            (0, 1)               output clamped at o*, then at y            1
============  ===================  =========================================  =========

A ``beta = 0`` EP state is a re-relaxation from ``s*`` without nudging (not ``s*`` itself).
TBP and RBP are the backprop baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from analogebl.errors import ConfigError
from analogebl.plan import NUDGES, SCHEDULES

__all__ = [
    "RULES",
    "RULE_LABELS",
    "ContrastiveLearning",
    "EquilibriumPropagation",
    "RecurrentBackprop",
    "Rule",
    "TruncatedBackprop",
    "make_rule",
    "rule_label",
]

#: Every rule for the circuits, in the paper's order (its Table 1), with its display label
#: (report tables and figures). The one list of rule names: the CLI and the reports read
#: it from here.
RULE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "cl": "CL",
        "p_ep": "P-EP",
        "n_ep": "N-EP",
        "c_ep": "C-EP",
        "p_cpl": "P-CpL",
        "n_cpl": "N-CpL",
        "c_cpl": "C-CpL",
        "tbp": "TBP",
        "rbp": "RBP",
    }
)
#: The rule names of :data:`RULE_LABELS`, in the paper's order.
RULES = tuple(RULE_LABELS)
_VARIANTS = ("positive", "negative", "centered")


def _check_schedule(schedule: str | None) -> None:
    if schedule is not None and schedule not in SCHEDULES:
        raise ConfigError(
            f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}",
            key="rule.schedule",
        )


@dataclass(frozen=True)
class _Contrastive:
    """``schedule``: the schedule of the two phases (``None``: the free phase's);
    ``nudge``: how an EP-nudged output moves (``"exact"`` minimiser or the published
    code's gradient ``"step"``; see ``RelaxationMixin.relax``)."""

    variant: str
    beta: float
    iterations: int = 15
    schedule: str | None = None
    nudge: str = "exact"

    def __post_init__(self):
        if self.variant not in _VARIANTS:
            raise ConfigError(
                f"variant must be one of {_VARIANTS}, got {self.variant!r}", key="rule.variant"
            )
        _check_schedule(self.schedule)
        if self.nudge not in NUDGES:
            raise ConfigError(
                f"nudge must be one of {', '.join(NUDGES)}, got {self.nudge!r}", key="rule.nudge"
            )
        if not self.beta > 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}", key="rule.beta")
        if self.iterations < 1:
            raise ConfigError("iterations must be >= 1", key="rule.iterations")

    @property
    def betas(self) -> tuple[float, float]:
        """``(beta1, beta2)`` of the two states."""
        b = self.beta
        return {"positive": (0.0, b), "negative": (-b, 0.0), "centered": (-b, b)}[self.variant]

    @property
    def divisor(self) -> float:
        b1, b2 = self.betas
        return b2 - b1


@dataclass(frozen=True)
class EquilibriumPropagation(_Contrastive):
    """EP: both states minimise ``F = E + beta * 1/2||o - y||^2`` with all layers free."""

    @property
    def name(self) -> str:
        return self.variant[0] + "_ep"


@dataclass(frozen=True)
class ContrastiveLearning(_Contrastive):
    """CpL / CL: the output is clamped at ``o* + beta_i (y - o*)``; hidden layers relax.

    CL is the positive variant with ``beta = 1`` (the output clamped at the target).
    """

    @property
    def name(self) -> str:
        if self.variant == "positive" and self.beta == 1.0:
            return "cl"
        return self.variant[0] + "_cpl"


@dataclass(frozen=True)
class TruncatedBackprop:
    """TBP: backprop through the last ``iterations`` iterations from ``s*`` (``schedule``:
    theirs; ``None``: the free phase's)."""

    iterations: int = 15
    schedule: str | None = None
    name = "tbp"

    def __post_init__(self):
        _check_schedule(self.schedule)


@dataclass(frozen=True)
class RecurrentBackprop:
    """RBP: Almeida-Pineda with ``iterations`` terms on the synchronous map at ``s*``."""

    iterations: int = 15
    name = "rbp"


def rule_label(name: str) -> str:
    """Display label of a rule (``"p_cpl"`` -> ``"P-CpL"``); other names come back unchanged."""
    return RULE_LABELS.get(name, name)


Rule = EquilibriumPropagation | ContrastiveLearning | TruncatedBackprop | RecurrentBackprop


def make_rule(
    name: str,
    beta: float | None = None,
    iterations: int = 15,
    schedule: str | None = None,
    nudge: str = "exact",
) -> Rule:
    """Rule by name (see :data:`RULES`); ``beta`` defaults to the paper's (0.25; CL: 1.0).

    ``schedule`` (the rule's phases; ``None``: the free phase's) and ``nudge`` (EP) select
    the variants of the paper's NeurIPS release (``ca7aa26``, which produced its Table 1):
    EP phases ``"async_backward"`` with ``nudge="step"``, CL/CpL phases ``"sync"``, TBP
    ``"async_backward"``. RBP is synchronous by definition.
    """
    name = name.lower().replace("-", "_")
    if name not in RULES:
        raise ConfigError(f"unknown rule {name!r}; choose from {', '.join(RULES)}", key="rule")
    if name == "rbp":
        return RecurrentBackprop(iterations)
    if name == "tbp":
        return TruncatedBackprop(iterations, schedule)
    if name == "cl":
        if beta not in (None, 1.0):
            raise ConfigError("CL clamps the output at the target: beta is 1", key="rule.beta")
        return ContrastiveLearning("positive", 1.0, iterations, schedule, nudge)
    variant = {"p": "positive", "n": "negative", "c": "centered"}[name[0]]
    cls = EquilibriumPropagation if name.endswith("_ep") else ContrastiveLearning
    return cls(variant, 0.25 if beta is None else float(beta), iterations, schedule, nudge)
