"""A network built with a hardware profile, used directly (no training updater)."""

import numpy as np

import analogebl as ae
from analogebl.hardware import load_profile
from analogebl.learning import SGD, layer_learning_rates
from analogebl.training import CrossbarUpdater

STATS = ((0.1307,), (0.3081,))


def _net(profile: str, seed: int = 0) -> ae.Network:
    return ae.Network.from_catalog(
        "tiny_dense", backend="reference", dtype="float64", seed=seed,
        profile=load_profile(profile), data_stats=STATS,
    )  # fmt: skip


def test_noisy_converters_relax_without_an_updater_and_repeat_by_seed():
    """Converter noise draws from the network's own seeded stream until an updater installs
    its own: relax works on a freshly built network, and the same seed gives the same
    states (another seed other ones)."""
    x = np.random.default_rng(0).random((3, 1, 28, 28))
    a = _net("only_converters").relax(x, iterations=20)
    b = _net("only_converters").relax(x, iterations=20)
    c = _net("only_converters", seed=1).relax(x, iterations=20)
    np.testing.assert_array_equal(a["h1"], b["h1"])
    assert not np.array_equal(a["h1"], c["h1"])


def test_residual_under_read_noise_is_measured_under_the_draw_the_state_settled_in():
    net = _net("only_read_noise")
    opt = SGD(layer_learning_rates(list(net.parameters()), 0.05), 0.9)
    CrossbarUpdater(net.backend, opt, 0)  # installs the profile's read noise
    b = net.backend
    x = np.random.default_rng(1).random((4, 1, 28, 28))
    state = b.relax(b.zero_state(x), 200)
    assert b.residual(state) < 1e-10  # a fixed point of the weights it was relaxed under
    draw = b.read_noise_draw()
    b.set_read_noise_draw(None)  # the noise-free weights: the noise shows up as a residual
    assert b.residual(state) > 1e-3
    b.set_read_noise_draw(draw)
    assert b.weight("W1") is b.params["W1"]  # the draw is applied only while measuring
