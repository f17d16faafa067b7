"""``make_backend("auto", ...)`` says what it picked: at WARNING level (shown without any
logging set-up), once per distinct outcome."""

import logging
import subprocess
import sys

from analogebl import backends
from analogebl.backends import auto_backend, make_backend
from analogebl.circuit import load_circuit
from analogebl.plan import build_plan


def test_auto_choice_is_a_warning_once_per_outcome(caplog, monkeypatch):
    monkeypatch.setattr(backends, "_logged", set())
    plan = build_plan(load_circuit("tiny_dense"), 0)
    name, device = auto_backend(plan, "cpu")
    with caplog.at_level(logging.WARNING, logger="analogebl.backends"):
        make_backend("auto", plan, device="cpu")
        make_backend("auto", plan, device="cpu")
    records = [r for r in caplog.records if r.name == "analogebl.backends"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, f"backend auto -> {name} on {device or 'cpu'}")
    ]


def test_auto_choice_is_shown_without_logging_setup():
    code = (
        "from analogebl.backends import make_backend\n"
        "from analogebl.circuit import load_circuit\n"
        "from analogebl.plan import build_plan\n"
        "make_backend('auto', build_plan(load_circuit('tiny_dense'), 0), device='cpu')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "backend auto -> " in res.stderr
