"""Progress a user can follow: plain lines about every 30 s when the output is no terminal,
an ETA that leaves the JIT warm-up out and is refreshed (also for a resumed run), one-off
messages that do not break the tqdm bar, and a real run that writes its progress lines."""

from __future__ import annotations

import io
import re

import pytest

from analogebl.training import progress as progress_mod
from analogebl.training.progress import Progress


class Clock:
    """A fake monotonic clock the test advances."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _steps(p: Progress, clock: Clock, durations, samples: int = 50) -> None:
    for d in durations:
        clock.t += d
        p.step(samples, error=0.25, cost=0.125, energy=-3.0)


def _seconds(text: str) -> float:
    """A duration written by ``fmt_seconds`` ("12 s", "3.5 min", "1.2 h") in seconds."""
    value, unit = text.split()
    return float(value) * {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]


def test_plain_lines_every_30_s_with_steps_and_eta():
    clock, out, logged = Clock(), io.StringIO(), []
    p = Progress(1000, 2, stream=out, tty=False, log=logged.append, clock=clock)
    p.begin_epoch(0)
    seen, when = 0, []
    for k in range(400):
        _steps(p, clock, [20.0 if k == 0 else 1.0])
        lines = out.getvalue().splitlines()
        if len(lines) > seen:
            assert len(lines) == seen + 1  # one line at a time
            seen = len(lines)
            when.append(clock.t)
    assert "\r" not in out.getvalue()  # no bar in a file
    gaps = [b - a for a, b in zip([1000.0, *when], when, strict=False)]
    assert len(when) == 13  # 419 s in 30-s intervals (the 20-s first step makes the first)
    assert all(30.0 <= g <= 31.0 for g in gaps[1:]) and 30.0 <= gaps[0] <= 40.0, gaps
    first, last = out.getvalue().splitlines()[0], out.getvalue().splitlines()[-1]
    assert re.search(r"epoch 1/2  step 11/1000 \(1%\)", first), first
    assert "train_error 25.00%" in last and "cost 0.1250" in last
    assert "samples/s" in last and "ETA epoch" in last and ", run " in last
    # the one-off message went to the log, not into the progress stream
    assert len(logged) == 1 and logged[0].startswith("estimated time: ")
    assert "estimated time" not in out.getvalue()


def test_eta_leaves_out_the_warm_up_and_is_refreshed():
    """First step 20 s (JIT compilation), then 1 s per step: the ETA is the remaining
    steps at 1 s, not at the 3-5x slower mean that includes the first step."""
    clock, out, logged = Clock(), io.StringIO(), []
    n, epochs = 600, 3
    p = Progress(n, epochs, stream=out, tty=False, log=logged.append, clock=clock)
    p.begin_epoch(0)
    _steps(p, clock, [20.0, 1.0, 1.0, 1.0])
    truth = (n - 4) * 1.0 + (epochs - 1) * n * 1.0
    naive = (clock.t - 1000.0) / 4 * (epochs * n - 4)  # the old estimate: 6x too high
    assert naive > 5 * truth
    eta_epoch, eta_run = p.eta()
    assert (eta_epoch, eta_run) == pytest.approx((n - 4, truth))  # the 20 s step left out
    _steps(p, clock, [1.0] * 8)  # 10 steps after the warm-up: the one-off estimate
    assert len(logged) == 1
    per_epoch, remaining = re.match(
        r"estimated time: (.+) per epoch, (.+) left in the run \(this epoch and 2 more\)",
        logged[0],
    ).groups()
    assert _seconds(per_epoch) == pytest.approx(n, rel=0.1)
    assert _seconds(remaining) == pytest.approx(truth - 8, rel=0.1)
    # the machine slows down to 2 s per step: the ETA follows
    _steps(p, clock, [2.0] * 300)
    s = (10 + 2 * 300) / 310
    assert p.eta()[1] == pytest.approx((n - 312) * s + (epochs - 1) * n * s, rel=1e-9)


def test_eta_counts_the_measured_evaluation_of_an_epoch():
    clock, out = Clock(), io.StringIO()
    p = Progress(100, 3, stream=out, tty=False, log=lambda s: None, clock=clock,
                 eval_fraction=0.5)  # fmt: skip
    p.begin_epoch(0)
    _steps(p, clock, [5.0, 1.0, 1.0, 1.0])
    assert p.eta()[0] == pytest.approx(96 + 0.5 * 100)  # the guess before any evaluation
    _steps(p, clock, [1.0] * 96)
    p.end_training()
    clock.t += 30.0  # the evaluation
    p.end_epoch()
    p.begin_epoch(1)
    _steps(p, clock, [1.0] * 10)
    assert p.eta() == pytest.approx((90 + 30, 90 + 30 + 100 + 30))


def test_resumed_epoch_gets_a_sensible_eta():
    clock, out, logged = Clock(), io.StringIO(), []
    p = Progress(500, 3, (1, 400), stream=out, tty=False, log=logged.append, clock=clock,
                 announce=False)  # fmt: skip
    p.begin_epoch(1, 400)
    _steps(p, clock, [20.0, 2.0] + [1.0] * 10)
    eta_epoch, eta_run = p.eta()
    assert (eta_epoch, eta_run) == pytest.approx((500 - 412, 500 - 412 + 500))
    _steps(p, clock, [1.0] * 30)
    assert "epoch 2/3  step 440/500 (88%)" in out.getvalue()  # 30 s after step 410
    assert "ETA epoch 60 s, run 9.3 min" in out.getvalue()
    assert logged == []  # a resumed run does not announce its time again


def test_on_a_terminal_the_message_does_not_break_the_bar():
    clock, tty = Clock(), TTY()
    p = Progress(100, 2, stream=tty, clock=clock)  # tty detected by stream.isatty()
    p.begin_epoch(0)
    assert p.bar is not None
    _steps(p, clock, [20.0] + [1.0] * 11)  # the estimate is written through tqdm.write
    text = tty.getvalue()
    segments = re.split(r"[\r\n]", text)
    msg = [s for s in segments if "estimated time" in s]
    assert len(msg) == 1 and msg[0].startswith("estimated time: "), segments
    assert re.search(r"(^|\r)estimated time: [^\r\n]*\n", text)  # a line of its own
    assert "epoch 1/2" in text and "run=" in text and "eta=" in text  # bar + postfix
    p.end_training()
    assert p.bar is None


def test_a_log_message_is_written_while_the_bar_is_cleared():
    clock, tty, seen = Clock(), TTY(), []

    def log(line: str) -> None:  # e.g. the study runner's print to stdout
        seen.append((line, tty.getvalue().rsplit("\r", 1)[-1]))

    p = Progress(100, 1, stream=tty, tty=True, log=log, clock=clock)
    p.begin_epoch(0)
    _steps(p, clock, [1.0] * 5)
    p.message("hello")
    line, after_bar = seen[-1]
    assert line == "hello" and after_bar.strip() == ""  # the bar was cleared first
    assert "epoch 1/1" in tty.getvalue().rsplit("\r", 1)[-1]  # and drawn again
    p.close()


def test_disabled_progress_writes_nothing_but_still_announces():
    clock, out, logged = Clock(), io.StringIO(), []
    p = Progress(20, 1, enabled=False, stream=out, tty=True, log=logged.append, clock=clock,
                 interval=0.0)  # fmt: skip
    p.begin_epoch(0)
    _steps(p, clock, [1.0] * 20)
    p.end_training()
    assert out.getvalue() == "" and p.bar is None
    assert len(logged) == 1 and logged[0].startswith("estimated time")


@pytest.mark.parametrize(
    "progress, terminal",
    [(True, False), ("lines", True)],  # "lines": a pool or Dask worker, even on a terminal
)
def test_a_real_run_writes_progress_lines_to_a_log(
    data_dir, tmp_path, capsys, monkeypatch, progress, terminal
):
    from analogebl.pipeline import run_training
    from analogebl.study import load_study, parse_set

    monkeypatch.setattr(progress_mod, "HEARTBEAT_SECONDS", 0.0)  # a line every step
    monkeypatch.setattr(progress_mod, "_isatty", lambda stream: terminal)
    sets = [
        "epochs=2",
        "train_subset=200",
        "test_subset=100",
        "batch_size=50",
        "circuit.name=tiny_dense",
        "optimizer.lr=[0.1, 0.05, 0.025]",
        "backend=numba",
    ]
    study = load_study("mnist_dhn_c_ep", "smoke", [parse_set(s) for s in sets])
    logged = []
    res = run_training(study, log=logged.append, progress=progress, path=tmp_path / "run.h5")
    assert len(res.epochs) == 2
    err = capsys.readouterr().err
    assert "\r" not in err  # no bar
    lines = [s for s in err.splitlines() if s.startswith("[run] epoch ")]
    assert any("epoch 1/2  step 1/4 " in s for s in lines), err
    assert any("epoch 2/2  step 3/4 " in s for s in lines), err
    assert all("ETA epoch" in s and "samples/s" in s for s in lines)
    assert sum(s.startswith("estimated time: ") for s in logged) == 1
    assert sum(s.startswith("epoch ") for s in logged) == 2  # the per-epoch lines


@pytest.mark.parametrize("tty", [False, True])
def test_a_closed_stream_turns_progress_off_and_never_stops_the_run(tty):
    """A log file closed under the run (or a broken pipe): the loop's calls go on, silently."""
    clock, out = Clock(), io.StringIO()
    p = Progress(50, 2, stream=out, tty=tty, log=lambda s: None, clock=clock, interval=1.0)
    p.begin_epoch(0)
    _steps(p, clock, [2.0] * 3)
    out.close()
    _steps(p, clock, [2.0] * 5)  # would write a line (or redraw the bar) at every step
    p.end_training()
    p.end_epoch()
    p.begin_epoch(1)
    _steps(p, clock, [2.0] * 2)
    p.close()
    if not tty:  # (tqdm throttles its redraws, and may swallow a failed one itself)
        assert not p.enabled and p.stream is None
