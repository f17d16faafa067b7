"""Shared fixtures. Data-reading tests use $ANALOGEBL_DATA (CI sets it to ../shared/data)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from analogebl.backends import make_backend
from analogebl.circuit import load_circuit
from analogebl.plan import build_plan


def pytest_configure(config):
    # CI exports a relative ANALOGEBL_DATA (../shared/data); tests that run the CLI from
    # another folder (the robustness tables chdir into tmp_path) need it absolute
    if os.environ.get("ANALOGEBL_DATA"):
        os.environ["ANALOGEBL_DATA"] = os.path.abspath(os.environ["ANALOGEBL_DATA"])
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # a fixed budget: runs compared bit for bit (resume, executors) must not pick different
    # counts because the machine's load changed between them (analogebl.threads)
    os.environ.setdefault("ANALOGEBL_THREADS", "2")


@pytest.fixture(scope="session")
def data_dir():
    root = os.environ.get("ANALOGEBL_DATA")
    if not root or not os.path.isdir(root):
        pytest.skip("ANALOGEBL_DATA is not set to the dataset folder (CI sets ../shared/data)")
    return root


FAST_BACKENDS = ("torch", "numba")


def backend_pair(
    circuit: str, dtype: str = "float64", seed: int = 0, fast: str = "torch", **overrides
):
    """The reference backend and the fast backend ``fast`` on the same plan."""
    plan = build_plan(load_circuit(circuit, **overrides), seed)
    return make_backend("reference", plan, dtype), make_backend(fast, plan, dtype)


def random_batch(plan, n: int, seed: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    x = scale * rng.normal(size=(n, *plan.layer_shapes[0]))
    y = rng.integers(0, plan.layer_shapes[-1][0], size=n)
    return x, y


def max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.fixture(scope="session")
def all_data_dir(data_dir, tmp_path_factory):
    """$ANALOGEBL_DATA plus official-format CIFAR-100 and SVHN files written by the tests."""
    from tests.datafiles import full_data_root

    return str(full_data_root(data_dir, tmp_path_factory.mktemp("data")))
