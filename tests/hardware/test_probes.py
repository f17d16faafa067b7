"""Gradient-fidelity probes: exact on an ideal circuit, invisible to training, and they see
what the hardware does to the rule's signal (noise floor, converter steps, idle devices)."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.pipeline import run_training
from analogebl.recording import read_run
from analogebl.study import load_study, parse_set

SETS = ["train_subset=200", "test_subset=100", "epochs=1", "batch_size=50", "probes=32"]


def _run(tmp_path, name, *extra):
    study = load_study("mnist_dhn_c_ep", "smoke", [parse_set(s) for s in SETS + list(extra)])
    run_training(study, progress=False, path=tmp_path / f"{name}.h5")
    return {k: v for k, v in read_run(tmp_path / f"{name}.h5").metrics.items()}


def test_on_the_ideal_circuit_the_realised_update_is_the_estimate(data_dir, tmp_path):
    """No devices: the realised update is -eta g exactly; C-EP at a small beta is close to
    the implicit gradient; nothing is noisy and nothing is converted."""
    m = _run(tmp_path, "ideal", "rule.beta=0.01", "relaxation.free_iterations=40",
             "rule.iterations=20")  # fmt: skip
    for k in ("W1", "W2", "b1", "b2"):
        cos = m[f"probe_cos_estimate_{k}"][-1]
        assert m[f"probe_cos_realised_{k}"][-1] == pytest.approx(cos, abs=1e-12)
        assert m[f"probe_cos_estimate_{k}"][-1] > 0.99, k
        assert abs(m[f"probe_norm_realised_{k}"][-1] - 1) < 0.1, k
        assert f"probe_idle_{k}" not in m
    for layer in ("h1", "out"):
        assert m[f"probe_noise_rms_{layer}"][-1] == 0 and m[f"probe_lsb_{layer}"][-1] == 0
        assert m[f"probe_contrast_rms_{layer}"][-1] > 0


def test_probes_leave_the_training_trajectory_unchanged(data_dir, tmp_path):
    """The probe restores every generator, the read-noise draw and the warm start, and writes
    its pulses into a copy of the crossbars."""
    a = _run(tmp_path, "with", "profile=reram_like", "epochs=2")
    b = _run(tmp_path, "without", "profile=reram_like", "epochs=2", "probes=0")
    assert not [k for k in b if k.startswith("probe_")]
    for k, v in b.items():
        if not k.startswith("seconds"):
            np.testing.assert_array_equal(a[k], v, err_msg=k)
    # reram_like: read noise per phase and ADC noise per tile read put a noise floor under
    # the contrast; 8-bit converters; levels and stochastic pulse rounding leave devices idle
    for layer in ("h1", "out"):
        assert a[f"probe_noise_rms_{layer}"][-1] > 0
        assert a[f"probe_lsb_{layer}"][-1] > 0
    assert a["probe_tile_lsb_W1"][-1] > 0
    assert 0 < a["probe_idle_W1"][-1] < 1
    assert a["probe_cos_realised_W1"][-1] < a["probe_cos_estimate_W1"][-1]


@pytest.mark.parametrize("resample", ["per_update", "per_phase"])
def test_the_noise_floor_is_the_read_noise_a_phase_redraws(data_dir, tmp_path, resample):
    """Read noise drawn once per update is shared by both phases (no floor under the
    contrast); drawn per phase, two free phases of the same batch differ."""
    f = tmp_path / "noisy.toml"
    f.write_text(f'[profile]\nname = "noisy"\nextends = "ideal_fp32"\n'
                 f'[read]\nnoise_rel = 0.05\nresample = "{resample}"\n')  # fmt: skip
    m = _run(tmp_path, resample, f"profile={f}")
    floor = m["probe_noise_rms_h1"][-1]
    assert (floor > 1e-4) == (resample == "per_phase"), floor
