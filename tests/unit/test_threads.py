"""Thread control: budgets, per-operation counts, pools that never oversubscribe, resume on
the recorded count, and results that do not depend on how a budget is reached."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

from analogebl import threads as T
from analogebl.errors import ConfigError
from analogebl.study.runner import pool_plan


@pytest.fixture
def restore_threads():
    before = T.current()
    yield
    T.set_threads(before)


def test_parse_threads_accepts_auto_and_positive_integers_only():
    assert T.parse_threads("auto") is None
    assert T.parse_threads(None) is None
    assert T.parse_threads(3) == 3
    assert T.parse_threads("2") == 2
    for bad in (0, -1, "0", "two", 1.5, True):
        with pytest.raises(ConfigError, match="positive integer or 'auto'"):
            T.parse_threads(bad)


def test_auto_budget_is_the_free_cores_split_among_workers(monkeypatch):
    monkeypatch.delenv("ANALOGEBL_THREADS", raising=False)
    monkeypatch.setattr(T, "available_cores", lambda: 8)
    assert T.resolve_threads("auto", busy=0.0) == 8
    assert T.resolve_threads("auto", busy=2.6) == 5  # three cores taken
    assert T.resolve_threads("auto", busy=8.0) == 1  # never zero
    assert T.resolve_threads("auto", workers=3, busy=0.0) == 2
    assert T.resolve_threads("auto", workers=16, busy=0.0) == 1
    assert T.resolve_threads(4, busy=8.0) == 4  # explicit wins over load
    monkeypatch.setenv("ANALOGEBL_THREADS", "3")
    assert T.resolve_threads("auto", busy=0.0) == 3


def test_busy_cores_sees_a_spinning_process():
    idle = T.busy_cores(0.3)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = T.busy_cores(0.5)
    finally:
        hog.kill()
        hog.wait()
    assert busy >= 0.6, (idle, busy)
    assert 0.0 <= idle <= (T.os.cpu_count() or 1)


def test_available_cores_respects_affinity():
    assert 1 <= T.available_cores() <= len(T.os.sched_getaffinity(0))


def test_set_threads_limits_every_pool(restore_threads):
    import numba
    import torch

    T.set_threads(1)
    assert all(p["num_threads"] == 1 for p in threadpoolctl.threadpool_info())
    assert torch.get_num_threads() == 1
    assert numba.get_num_threads() == 1
    assert T.os.environ["OMP_NUM_THREADS"] == "1"  # inherited by worker processes
    assert T.current() == 1
    with pytest.raises(ValueError):
        T.set_threads(0)


def _blas_threads() -> int:
    return min(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")


def test_small_operations_run_on_one_thread_large_ones_on_the_budget(restore_threads):
    import numba

    T.set_threads(2)
    assert T.for_macs(128 * 512 * 10) == 1 and _blas_threads() == 1
    assert T.for_macs(256 * 1024 * 1024) == 2 and _blas_threads() == 2
    assert T.for_elements(128 * 512) == 1 and numba.get_num_threads() == 1
    assert T.for_elements(32 * 128 * 32 * 32) == 2 and numba.get_num_threads() == 2
    T.for_macs(1)
    T.for_elements(1)
    T.settle()  # a training step starts on the full budget
    assert _blas_threads() == 2 and numba.get_num_threads() == 2
    T.set_threads(1)
    assert T.for_macs(1e12) == 1  # never above the budget


def test_numba_relaxation_runs_small_products_on_one_thread(restore_threads, monkeypatch):
    """dhn_mnist at batch 128 on a budget of 2: the per-iteration products (128x512x10) and
    the layer kernels run on one thread, the input product (128x784x512) on two; on the
    engine's path primitive by primitive, and in the compiled phase (one decision for the
    input product, one for the loop's products)."""
    from analogebl.backends import make_backend
    from analogebl.backends.relaxation import RelaxationMixin
    from analogebl.circuit import load_circuit
    from analogebl.plan import build_plan

    T.set_threads(2)
    gemms, kernels = [], []
    for_macs, for_elements = T.for_macs, T.for_elements
    monkeypatch.setattr(T, "for_macs", lambda m: gemms.append((m, for_macs(m))) or gemms[-1][1])
    monkeypatch.setattr(
        T, "for_elements", lambda n: kernels.append((n, for_elements(n))) or kernels[-1][1]
    )
    plan = build_plan(load_circuit("dhn_mnist"), 0)
    be = make_backend("numba", plan, "float32")
    x = np.random.default_rng(0).normal(size=(128, 784)).astype("float32")
    RelaxationMixin.relax(be, be.zero_state(x), 10)  # the engine's path
    assert (128 * 784 * 512, 2) in gemms  # the input product, once
    assert (128 * 512 * 10, 1) in gemms and (128 * 10 * 512, 1) in gemms
    assert sum(n == 2 for _, n in gemms) == 1 and len(gemms) > 10
    assert kernels and all(n == 1 for _, n in kernels)  # 128 x 512 clamps
    gemms.clear()
    be.relax(be.zero_state(x), 10)  # the compiled phase
    assert gemms == [(128 * 784 * 512, 2), (128 * 512 * 10, 1)]


def test_pool_never_oversubscribes():
    # auto runs split the free cores
    assert pool_plan([None] * 4, 2, free=2, cores=2) == (2, 1)
    assert pool_plan([None] * 4, 4, free=8, cores=8) == (4, 2)
    # a busy machine: still one thread each, never more workers than cores
    assert pool_plan([None] * 8, 8, free=1, cores=2) == (2, 1)
    # fewer runs than workers
    assert pool_plan([None], 4, free=4, cores=4) == (1, 4)
    # explicit counts are honoured by running fewer workers
    assert pool_plan([2, 2, 2], 4, free=2, cores=2) == (1, 2)
    assert pool_plan([2, None], 4, free=8, cores=8) == (2, 4)
    for asked, w, free, cores in ([(None,) * 5, 3, 3, 4], [(1,) * 5, 8, 4, 4]):
        workers, threads = pool_plan(list(asked), w, free, cores)
        assert workers * threads <= cores


class _Previous:
    def __init__(self, threads):
        self.meta = {"threads": threads}


def test_resume_reuses_the_recorded_budget(restore_threads):
    from analogebl.pipeline import _thread_budget

    said = []
    assert _thread_budget("auto", _Previous(1), None, said.append) == 1
    assert T.current() == 1 and not said
    # an executor's share caps an auto run; a changed count is announced
    assert _thread_budget("auto", _Previous(2), 1, said.append) == 1
    assert "started on 2" in said[-1]
    assert _thread_budget(2, _Previous(1), None, said.append) == 2  # explicit wins
    assert "started on 1" in said[-1]
    assert _thread_budget("auto", None, 1, said.append) == 1
    # old run files have no recorded count
    assert _thread_budget(1, _Previous(0), None, said.append) == 1


def test_threads_key_is_validated_in_studies_and_on_the_command_line():
    from analogebl.study import parse_set

    assert parse_set("threads=2") == ("threads", 2)
    assert parse_set("threads=auto") == ("threads", "auto")
    for bad in ("threads=0", "threads=two", "threads=-3"):
        with pytest.raises(ConfigError, match="threads"):
            parse_set(bad)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "analogebl.cli",
            "study",
            "run",
            "mnist_dhn_c_ep",
            "--threads",
            "zero",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "threads" in res.stderr
    assert "Traceback" not in res.stderr


def test_spinning_defaults_respect_the_users_choice():
    env = {}
    T.quiet_spinning_defaults(env)
    assert env == T.SPIN_DEFAULTS
    env = {"OPENBLAS_THREAD_TIMEOUT": "20", "OMP_WAIT_POLICY": "active"}
    T.quiet_spinning_defaults(env)
    assert env["OPENBLAS_THREAD_TIMEOUT"] == "20" and "GOMP_SPINCOUNT" not in env
