"""Contrastive rules need equilibria: the relaxation budgets the studies ship must reach one.

EP and CpL estimate the gradient from two relaxed states; when a relaxation stops far from
its fixed point the contrast carries the unfinished relaxation, which swamps the couplings
far from the output (why C-EP sat at chance on the seven-rule cpu tiers at gains 1.0:
residual 0.13 after 60 iterations). These tests pin the physics that matters: at gains 1.0
the width-0.125 DCHN does not settle in 60 iterations, the guard says so, and every cpu tier
of a DCHN study settles within its budget on real images.
"""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.data import iterate_batches, load_dataset
from analogebl.spec import RunSpec
from analogebl.study import load_study
from analogebl.training.build import build_network
from analogebl.training.trainer import EQUILIBRIUM_TOL, _warn_off_equilibrium


def _free_residual(study: str, tier: str, overrides=(), n: int = 16) -> tuple[float, int]:
    st = load_study(study, tier=tier, overrides=[("dtype", "float64"), *overrides]).runs()[0]
    spec = RunSpec.from_flat(st.as_dict(), path=st.path, study=st.name, tier=st.tier)
    d = spec.data
    ds = load_dataset(d.dataset, train_subset=256, test_subset=64, subset_seed=0)
    net, _ = build_network(spec, ds)
    xb, _ = next(
        iter(
            iterate_batches(
                ds.train_x[:n], ds.train_y[:n], n, rng=None, mean=ds.mean, std=ds.std,
                pad_to=d.pad_to, augmentation=None, dtype=np.dtype("float64"),
            )
        )
    )  # fmt: skip
    b = net.backend
    iters = spec.relaxation.free_iterations
    return b.residual(b.relax(b.zero_state(xb), iters, spec.relaxation.schedule)), iters


@pytest.mark.parametrize(
    "study", ["seven_rules_fmnist", "seven_rules_mnist", "rules_x_profiles_fmnist"]
)
def test_cpu_tiers_relax_to_equilibrium(study, data_dir):
    residual, iters = _free_residual(study, "cpu")
    assert residual < EQUILIBRIUM_TOL, (
        f"{study} cpu tier: residual {residual:.2g} after {iters} free iterations"
    )


def test_gains_one_does_not_settle_in_60_iterations_and_the_guard_says_so(data_dir):
    """The configuration that kept C-EP at chance: the guard must catch it."""
    gains = [("circuit.gains", [1.0] * 5), ("relaxation.free_iterations", 60)]
    residual, _ = _free_residual("seven_rules_fmnist", "cpu", gains)
    assert residual > EQUILIBRIUM_TOL
    lines: list[str] = []
    assert _warn_off_equilibrium({"residual": residual, "error": 0.5}, 60, lines.append)
    assert len(lines) == 1 and "relaxation.free_iterations" in lines[0]
    assert "circuit.gains" in lines[0]
    # converged rows stay quiet
    assert not _warn_off_equilibrium({"residual": 1e-7, "residual_nudged": 1e-6}, 60, print)
