"""What a training run returns: one :class:`EpochResult` per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EpochResult", "TrainingResult"]


@dataclass(frozen=True)
class EpochResult:
    """One finished epoch of a run.

    Parameters
    ----------
    epoch : int
        The epoch's number, counted from 1.
    train_error : float
        Error rate of the free phases over the epoch's training batches (fraction).
    train_cost : float
        Mean cost ``1/2 ||o - y||^2`` of those free phases.
    test_error : float
        Error rate on the test set after the epoch (fraction).
    seconds : float
        Wall time of the epoch (training and evaluation).
    """

    epoch: int
    train_error: float
    train_cost: float
    test_error: float
    seconds: float


@dataclass
class TrainingResult:
    """What :meth:`analogebl.training.Trainer.fit` (and :func:`analogebl.pipeline.run_training`)
    returns.

    Parameters
    ----------
    epochs : list of EpochResult
        Every finished epoch of the run, those of an earlier attempt included.
    seconds : float
        Wall time of this call.
    path : Path or None
        The run file (``None``: nothing was recorded).
    resumed_from : (int, int) or None
        ``(epoch, step)`` of the checkpoint this call continued from (``None``: a fresh
        start, or a run that was already complete).
    """

    epochs: list[EpochResult] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None
    resumed_from: tuple[int, int] | None = None  # (epoch, step) of the checkpoint used

    @property
    def test_error(self) -> float:
        """Test error after the last finished epoch (NaN if none finished)."""
        return self.epochs[-1].test_error if self.epochs else math.nan
