"""The typed run configuration: every catalog run builds one; every bad value is refused in
one place with the file and the dotted key; None instead of sentinels."""

from __future__ import annotations

import dataclasses
import math

import pytest

from analogebl.catalog import list_entries
from analogebl.errors import ConfigError
from analogebl.spec import OptimizerSpec, RunSpec
from analogebl.study import load_study


@pytest.mark.parametrize("name", sorted(list_entries("studies")))
def test_every_catalog_run_builds_a_frozen_spec(name):
    study = load_study(name, tier="smoke")
    for run in study.runs():
        spec = RunSpec.from_flat(run.as_dict(), path=run.path, study=name, run_id=run.run_id)
        assert (spec.circuit is None) != (spec.model is None)
        assert spec.hardware.profile != "none"  # None, not a sentinel string
        assert spec.threads is None or spec.threads >= 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.seed = 1  # type: ignore[misc]


def _flat(**changes):
    values = load_study("mnist_dhn_c_ep", tier="smoke").as_dict()
    values.update(changes)
    return values


@pytest.mark.parametrize(
    "key, value",
    [
        ("optimizer.lr", math.nan),
        ("optimizer.lr", [0.1, -1.0]),
        ("optimizer.momentum", 1.5),
        ("optimizer.name", "lion"),
        ("optimizer.schedule", "linear"),
        ("rule.beta", math.inf),
        ("rule.iterations", 0),
        ("relaxation.schedule", "random"),
        ("circuit.width", math.nan),
        ("batch_size", 0),
        ("checkpoint_minutes", math.nan),
        ("dtype", "float16"),
        ("threads", 0),
    ],
)
def test_bad_values_name_the_file_and_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        RunSpec.from_flat(_flat(**{key: value}), path="studies/x.toml")
    assert info.value.key == key and info.value.path == "studies/x.toml"
    assert "studies/x.toml" in str(info.value) and key in str(info.value)


def test_sentinels_become_none_and_rates_are_per_layer():
    spec = RunSpec.from_flat(_flat(profile="none", threads="auto", **{"optimizer.lr": [0.1, 0.05]}))
    assert spec.hardware.profile is None and spec.threads is None
    assert spec.optimizer.lr == (0.1, 0.05)
    rates = spec.optimizer.rates(["W1", "b1", "W2", "b2"])
    assert rates == {"W1": 0.1, "b1": 0.1, "W2": 0.05, "b2": 0.05}
    scaled = OptimizerSpec("sgd", 0.1, lr_scale=0.5).rates(["W1"])
    assert scaled == {"W1": 0.05}


def test_a_recurrent_model_refuses_a_hardware_profile():
    values = _flat(profile="reram_like", **{"model.name": "looped_mlp", "circuit.name": None})
    with pytest.raises(ConfigError, match="recurrent models") as info:
        RunSpec.from_flat(values, path="s.toml")
    assert info.value.key == "profile"
