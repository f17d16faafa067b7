"""What a training run returns: one :class:`EpochResult` per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EpochResult", "TrainingResult"]


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_error: float
    train_cost: float
    test_error: float
    seconds: float


@dataclass
class TrainingResult:
    epochs: list[EpochResult] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None
    resumed_from: tuple[int, int] | None = None  # (epoch, step) of the checkpoint used

    @property
    def test_error(self) -> float:
        return self.epochs[-1].test_error if self.epochs else math.nan
