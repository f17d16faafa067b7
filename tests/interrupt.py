"""Stop a training run at a chosen step, in process (the resume tests)."""

from __future__ import annotations


def interrupt_at(monkeypatch, cls, call_number: int):
    """Make ``cls.train_step`` raise KeyboardInterrupt on its ``call_number``-th call (1-based)
    from now on; returns a function that puts the real method back."""
    real = cls.train_step
    calls = {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(cls, "train_step", failing)
    return lambda: monkeypatch.setattr(cls, "train_step", real)
