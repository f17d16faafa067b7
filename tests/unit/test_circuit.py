import numpy as np
import pytest

from analogebl.circuit import load_circuit
from analogebl.errors import ConfigError
from analogebl.plan import build_plan


def test_dchn32_width_multiplier_gives_paper_shapes():
    full = load_circuit("dchn32", in_channels=3, num_classes=10)
    assert [la.shape[0] for la in full.layers[1:-1]] == [128, 256, 512, 512]
    assert [la.shape for la in full.layers[1:]] == [
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (512, 2, 2),
        (10,),
    ]
    # the paper's parameter count for CIFAR-10 (weights + biases)
    n = sum(int(np.prod(s)) for s in full.parameter_shapes().values())
    assert n == 3_859_210
    quarter = load_circuit("dchn32", in_channels=1, width=0.25, num_classes=100)
    assert [la.shape[0] for la in quarter.layers[1:-1]] == [32, 64, 128, 128]
    assert quarter.parameter_shapes()["W5"] == (128 * 2 * 2, 100)


def test_dhn_mnist_shapes():
    c = load_circuit("dhn_mnist")
    assert c.parameter_shapes() == {"W1": (784, 512), "b1": (512,), "W2": (512, 10), "b2": (10,)}


def test_initialisation_bounds_follow_fan_in():
    c = load_circuit("dchn32", in_channels=3, width=0.25)
    p = build_plan(c, seed=3).parameters
    for coupling in c.couplings:
        bound = coupling.gain / np.sqrt(c.fan_in(coupling))
        w = p[coupling.name]
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.95 * bound  # uniform fills its range
        assert abs(np.std(w) - bound / np.sqrt(3)) < 0.05 * bound
        b = p[f"b{coupling.post}"]
        assert np.abs(b).max() <= 0.5 / np.sqrt(c.fan_in(coupling))
    # the paper's first-layer bias bound for C0 = 3: 0.5 / sqrt(27)
    assert abs(0.5 / np.sqrt(c.fan_in(c.couplings[0])) - 0.0962) < 1e-4


def test_seeded_parameters_are_reproducible():
    c = load_circuit("tiny_conv")
    a, b = build_plan(c, 7).parameters, build_plan(c, 7).parameters
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], build_plan(c, 8).parameters["W1"])


def test_bad_circuit_file_names_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        '[input]\nfeatures = 10\n[[hidden]]\ncoupling = "dense"\nunits = 4\n'
        'colour = "red"\n[output]\n'
    )
    with pytest.raises(ConfigError) as e:
        load_circuit(str(f))
    assert "bad.toml" in str(e.value) and "hidden[0].colour" in str(e.value)
    f.write_text(
        '[input]\nchannels = 1\nsize = [7, 7]\n[[hidden]]\ncoupling = "conv"\n'
        'channels = 2\npool = "max"\n[output]\n'
    )
    with pytest.raises(ConfigError, match="even"):
        load_circuit(str(f))


def test_unknown_circuit_lists_catalog():
    with pytest.raises(ConfigError, match="dchn32"):
        load_circuit("no_such_circuit")
