"""The Trainer owns a step: its nested state restores a trainer that continues bit-for-bit,
with the ideal updater and on crossbars."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.hardware import load_profile
from analogebl.learning import SGD, ConstantSchedule, layer_learning_rates, make_rule
from analogebl.network import Network
from analogebl.training import CrossbarUpdater, IdealUpdater, Trainer
from analogebl.training.support import flatten, unflatten


def test_flatten_and_unflatten_are_inverse_on_the_first_level():
    tree = {"params": {"W1": 1, "b1": 2}, "hw": {"W1/gp": 3}, "warm": {}}
    flat = flatten(tree)
    assert flat == {"params/W1": 1, "params/b1": 2, "hw/W1/gp": 3}
    assert unflatten(flat) == {"params": {"W1": 1, "b1": 2}, "hw": {"W1/gp": 3}}


def _trainer(profile: str | None):
    prof = None if profile is None else load_profile(profile)
    net = Network.from_catalog(
        "tiny_dense", backend="numba", dtype="float64", seed=3, profile=prof,
        data_stats=(0.0, 1.0),
    )  # fmt: skip
    opt = SGD(layer_learning_rates(list(net.parameters()), [0.1, 0.05, 0.025]), momentum=0.9)
    if profile is None:
        up = IdealUpdater(opt)
    else:
        up = CrossbarUpdater(net.backend, opt, seed=3)
    return Trainer(net, make_rule("c_ep", 0.25, 8), up, ConstantSchedule(), 20, "async")


@pytest.mark.parametrize("profile", [None, "reram_like"])
def test_state_dict_restores_a_trainer_that_continues_bit_for_bit(profile):
    rng = np.random.default_rng(0)
    n_in = _trainer(None).net.plan.layer_shapes[0]
    batches = [(rng.normal(size=(6, *n_in)), rng.integers(0, 10, size=6)) for _ in range(5)]
    a = _trainer(profile)
    for x, y in batches[:3]:
        a.step(x, y)
    ck = a.checkpoint(0, 3, {"n": 18.0})
    assert {k.split("/")[0] for k in ck.arrays} >= {"params", "opt", "warm"}
    if profile is not None:
        assert any(k.startswith("hw/") for k in ck.arrays) and ck.rng
    b = _trainer(profile)
    b.restore(ck)
    out_a = [a.step(x, y) for x, y in batches[3:]]
    out_b = [b.step(x, y) for x, y in batches[3:]]
    assert out_a == out_b
    pa, pb = a.net.parameters(), b.net.parameters()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    # the state is really restored: a fresh trainer that skipped it differs
    c = _trainer(profile)
    out_c = [c.step(x, y) for x, y in batches[3:]]
    assert out_c != out_a


def test_the_profile_is_compiled_into_the_plan():
    """The converters are part of the plan every backend runs: ADC codes on hidden layers."""
    prof = load_profile("ideal_16bit")
    plain = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=1)
    hw = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=1,
                              profile=prof, data_stats=(0.0, 1.0))  # fmt: skip
    assert plain.plan.quantizers is None and plain.plan.profile is None
    assert hw.plan.profile is prof and len(hw.plan.quantizers) == hw.plan.num_layers
    x = np.random.default_rng(0).normal(size=(4, *hw.plan.layer_shapes[0]))
    s_plain, s_hw = plain.relax(x, 30), hw.relax(x, 30)
    hidden = hw.plan.layer_names[1]
    step = hw.plan.quantizers[1].step
    codes = s_hw[hidden] / step
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-6)
    assert not np.array_equal(s_plain[hidden], s_hw[hidden])


def test_circuits_and_recurrent_models_are_trainable():
    from analogebl.models import ModelNetwork, ModelSpec
    from analogebl.training import Trainable

    net = Network.from_catalog("tiny_dense", backend="reference", dtype="float64")
    model = ModelNetwork(ModelSpec("looped_mlp", 16, 8, 3), "float64", None, 0)
    assert isinstance(net, Trainable) and isinstance(model, Trainable)
    assert not isinstance(object(), Trainable)
