"""Progress of a training run a user can follow, on a terminal and in a log file.

:class:`Progress` is the only place the trainer's loop reports progress from:

* on a terminal (``stream.isatty()``) a tqdm bar per epoch, its postfix holding the running
  error, cost and energy and the refreshed time left in the epoch and in the run;
* anywhere else (a log file, CI, ``nohup``) no bar -- no carriage returns in the file -- but
  one plain line about every :data:`HEARTBEAT_SECONDS` inside an epoch::

      [run] epoch 2/10  step 1200/6000 (20%)  85.3 samples/s  train_error 12.31%
      cost 0.0123  ETA epoch 15.2 min, run 2.1 h

  (one line in the output); the per-epoch summary line the trainer prints through its ``log``
  restarts the interval;
* one-off messages (the "estimated time" line) go through ``log`` while no bar is drawn, and
  around an active bar through :meth:`tqdm.tqdm.external_write_mode` (what ``tqdm.write``
  does), so the bar is cleared, the message gets its own line and the bar is redrawn below.

The time estimates are described in :class:`Progress`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO

from analogebl.training.support import fmt_seconds

__all__ = ["HEARTBEAT_SECONDS", "Progress"]

#: seconds between two plain progress lines inside an epoch when the stream is no terminal
HEARTBEAT_SECONDS = 30.0
#: the "estimated time" line is written once this many steps after the warm-up, or this
#: many seconds of them, have been timed (or at the end of the first epoch, if sooner)
ANNOUNCE_STEPS, ANNOUNCE_SECONDS = 10, 10.0

#: the bar: tqdm's own time left is replaced by the ETA in the postfix
_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"
)


class Progress:
    """Progress reporting and time estimates of :meth:`Trainer.fit
    <analogebl.training.Trainer.fit>`.

    Parameters
    ----------
    steps_per_epoch : int
        Training steps (batches) of one epoch.
    epochs : int
        Epochs of the whole run.
    start : tuple of int, optional
        ``(epoch, step)`` the run starts from: ``(0, 0)`` for a fresh run, a checkpoint's
        position for a resumed one (only the steps left are estimated).
    enabled : bool, optional
        Draw the bar or write the plain lines (``False``: neither, only the one-off messages
        through ``log``).
    stream : file-like, optional
        Where the bar and the plain lines go (default: ``sys.stderr`` at construction).
    tty : bool, optional
        Whether ``stream`` is a terminal (default: ``stream.isatty()``); tests override it.
    log : callable, optional
        Receives the one-off messages (default: written to ``stream``).
    interval : float, optional
        Seconds between two plain lines (default: :data:`HEARTBEAT_SECONDS`).
    warmup : int, optional
        The first steps of this process left out of the time estimates (JIT compilation,
        first-touch allocations, the memory-measured step).
    eval_fraction : float, optional
        The guess of an epoch's evaluation time as a fraction of its training time, used
        until the first epoch's evaluation has been timed.
    label : str, optional
        Prefix of the plain lines (``"[label] "``), e.g. the run's name.
    announce : bool, optional
        Write the one-off "estimated time" message once, when :data:`ANNOUNCE_STEPS` steps
        or :data:`ANNOUNCE_SECONDS` seconds after the warm-up have been timed (or at the end
        of the first epoch, if sooner).
    clock : callable, optional
        Monotonic clock in seconds (default ``time.perf_counter``); tests inject a fake.

    Notes
    -----
    The estimator. Every step is timed from the end of the previous step (or from
    :meth:`begin_epoch`) to the end of this one, so data loading and checkpoint writes
    count with the step itself. The first ``warmup`` steps of this process are left out:
    they pay the just-in-time compilation and the first allocations, which made a rate
    taken from the first few steps 3-5x too slow. The seconds per step ``s`` is the mean
    over all later steps of this process (not over an earlier process's steps: a resumed
    run measures its own speed). Until one such step has been timed the bar and the lines
    show the ETA as "?" (only an epoch shorter than the warm-up makes the one-off message
    fall back on the mean over the steps so far). An epoch's evaluation time ``v`` (from
    its last step to :meth:`end_epoch` or the next :meth:`begin_epoch`) is the most recent
    one measured, so a first evaluation's compilation drops out after the second epoch;
    before any was measured it is ``eval_fraction`` times ``n s``. With ``r`` steps left
    in the epoch, ``n`` steps per epoch and ``k`` epochs after this one, the epoch ends in
    ``r s + v`` and the run in ``r s + v + k (n s + v)``. Both are refreshed on every step
    (bar postfix) and in every plain line.
    """

    def __init__(
        self,
        steps_per_epoch: int,
        epochs: int,
        start: tuple[int, int] = (0, 0),
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        log: Callable[[str], None] | None = None,
        interval: float | None = None,
        warmup: int = 2,
        eval_fraction: float = 0.0,
        label: str = "",
        announce: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
        self.epoch, self.step_index = int(start[0]), int(start[1])
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled) and self.stream is not None
        self.tty = _isatty(self.stream) if tty is None else bool(tty)
        self.log = log
        self.interval = HEARTBEAT_SECONDS if interval is None else float(interval)
        self.warmup, self.eval_fraction = int(warmup), float(eval_fraction)
        self.label, self.announce = label, announce
        self.clock = clock
        self.bar = None
        now = clock()
        self._t_last = now  # end of the previous step (or the epoch's start)
        self._t_line = now  # the last plain line (or the epoch's start)
        self._t_trained: float | None = None  # end of the last epoch's training steps
        self._all = [0.0, 0, 0]  # seconds, steps, samples: every step
        self._warm = [0.0, 0, 0]  # seconds, steps, samples: the steps after the warm-up
        self._eval: float | None = None  # the latest epoch's evaluation, seconds
        self._running: dict[str, float] = {}

    # ------------------------------------------------------------------ the loop's calls
    def begin_epoch(self, epoch: int, first_step: int = 0) -> None:
        """Epoch ``epoch`` (0-based) starts at step ``first_step``: opens its bar."""
        now = self.clock()
        self._measure_eval(now)
        self.epoch, self.step_index = epoch, first_step
        self._t_last = self._t_line = now
        self._running = {}
        if self.enabled and self.tty:
            from tqdm import tqdm

            try:
                self.bar = tqdm(
                    total=self.steps_per_epoch, initial=first_step,
                    desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, file=self.stream,
                    dynamic_ncols=True, bar_format=_BAR_FORMAT,
                )  # fmt: skip
            except (OSError, ValueError):
                self._lost()

    def step(
        self,
        samples: int,
        error: float = math.nan,
        cost: float = math.nan,
        energy: float = math.nan,
    ) -> None:
        """A step of ``samples`` examples has ended; ``error``, ``cost``, ``energy``: the
        epoch's running means. Refreshes the bar, or writes a plain line when due."""
        now = self.clock()
        dt, self._t_last = now - self._t_last, now
        self.step_index += 1
        self._all[0] += dt
        self._all[1] += 1
        self._all[2] += samples
        if self._all[1] > self.warmup:
            self._warm[0] += dt
            self._warm[1] += 1
            self._warm[2] += samples
        self._running = {"error": error, "cost": cost, "energy": energy}
        if self.announce and (
            self._warm[1] >= ANNOUNCE_STEPS
            or self._warm[0] >= ANNOUNCE_SECONDS
            or self.step_index >= self.steps_per_epoch
        ):
            self.announce = False
            self.message(self.estimate_message())
        if not self.enabled:
            return
        if self.bar is not None:
            eta = self.shown_eta()
            try:
                self.bar.set_postfix(
                    {"err": f"{error:.3f}", "cost": f"{cost:.3f}", "E": f"{energy:.2f}",
                     "eta": _fmt(eta[0]), "run": _fmt(eta[1])}, refresh=False,
                )  # fmt: skip
                self.bar.update(1)
            except (OSError, ValueError):
                self._lost()
        elif now - self._t_line >= self.interval and self.step_index < self.steps_per_epoch:
            self._t_line = now
            self._write(self.line())

    def end_training(self) -> None:
        """The epoch's training steps are done (its evaluation follows): closes the bar."""
        self._t_trained = self.clock()
        self.close()

    def end_epoch(self) -> None:
        """The epoch's evaluation and summary line are done (times the evaluation)."""
        self._measure_eval(self.clock())

    def close(self) -> None:
        """Close the bar (if any); safe to call more than once."""
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                self._lost()
            self.bar = None

    def message(self, text: str) -> None:
        """A one-off message: through ``log`` (or onto the stream), never into the bar."""
        if self.bar is not None:
            from tqdm import tqdm

            if self.log is None:
                tqdm.write(text, file=self.stream)
            else:
                with tqdm.external_write_mode(file=self.stream):
                    self.log(text)
        elif self.log is not None:
            self.log(text)
        elif self.stream is not None:
            self._write(text)

    # ------------------------------------------------------------------ estimates
    def _measured(self) -> list:
        """(seconds, steps, samples) after the warm-up, or of every step before."""
        return self._warm if self._warm[1] else self._all

    def seconds_per_step(self) -> float:
        """Mean seconds per step after the warm-up (before: over every step; NaN: none)."""
        s, n, _ = self._measured()
        return s / n if n else math.nan

    def samples_per_second(self) -> float:
        """Examples per second, over the same steps as :meth:`seconds_per_step`."""
        s, _, m = self._measured()
        return m / s if s > 0 else math.nan

    def eval_seconds(self) -> float:
        """An epoch's evaluation time: the latest measured, else the ``eval_fraction``
        guess."""
        if self._eval is not None:
            return self._eval
        return self.eval_fraction * self.steps_per_epoch * self.seconds_per_step()

    def eta(self) -> tuple[float, float]:
        """Seconds until the current epoch's evaluation ends and until the run ends."""
        s, v = self.seconds_per_step(), self.eval_seconds()
        left = max(self.steps_per_epoch - self.step_index, 0)
        epoch = left * s + v
        later = max(self.epochs - self.epoch - 1, 0)
        return epoch, epoch + later * (self.steps_per_epoch * s + v)

    def shown_eta(self) -> tuple[float, float]:
        """:meth:`eta` once a step after the warm-up has been timed, NaN (shown as "?")
        before: the warm-up's rate would overstate the time left several times."""
        return self.eta() if self._warm[1] else (math.nan, math.nan)

    def estimate_message(self) -> str:
        """The one-off "estimated time: ... per epoch, ... left in the run (this epoch and N
        more)" (the time left counts the rest of this epoch and every later epoch)."""
        s, v = self.seconds_per_step(), self.eval_seconds()
        later = max(self.epochs - self.epoch - 1, 0)
        more = f"this epoch and {later} more" if later else "this epoch"
        return (
            f"estimated time: {_fmt(self.steps_per_epoch * s + v)} per epoch, "
            f"{_fmt(self.eta()[1])} left in the run ({more})"
        )

    def line(self) -> str:
        """The plain progress line (step, rate, running error and cost, both ETAs)."""
        n, k = self.steps_per_epoch, self.step_index
        r = self._running
        eta_epoch, eta_run = self.shown_eta()
        prefix = f"[{self.label}] " if self.label else ""
        return (
            f"{prefix}epoch {self.epoch + 1}/{self.epochs}  step {k}/{n} "
            f"({100 * k / max(n, 1):.0f}%)  {self.samples_per_second():.1f} samples/s  "
            f"train_error {100 * r.get('error', math.nan):.2f}%  "
            f"cost {r.get('cost', math.nan):.4f}  "
            f"ETA epoch {_fmt(eta_epoch)}, run {_fmt(eta_run)}"
        )

    # ------------------------------------------------------------------ helpers
    def _measure_eval(self, now: float) -> None:
        if self._t_trained is not None:
            self._eval = now - self._t_trained
            self._t_trained = None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed file, a broken pipe: progress never stops a run
            self._lost()

    def _lost(self) -> None:
        """The stream is gone: report nothing more (the run goes on)."""
        self.enabled = False
        self.bar = None
        self.stream = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _fmt(seconds: float) -> str:
    return "?" if not math.isfinite(seconds) else fmt_seconds(max(seconds, 0.0))
