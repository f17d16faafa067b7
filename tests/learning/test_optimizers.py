"""Our optimizers and schedule against torch.optim on random problems."""

import math

import numpy as np
import pytest
import torch

from analogebl.errors import ConfigError
from analogebl.learning import SGD, Adam, CosineSchedule, layer_learning_rates


def _run_ours(opt, params, grads_seq):
    for g in grads_seq:
        opt.step(params, g)
    return params


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_matches_torch_optim(kind):
    rng = np.random.default_rng(0)
    p0 = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=(3,))}
    grads = [{k: rng.normal(size=v.shape) for k, v in p0.items()} for _ in range(6)]
    lrs = {"W1": 0.05, "b1": 0.02}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    groups = [{"params": [tp[k]], "lr": lrs[k]} for k in p0]
    if kind == "sgd":
        ours = SGD(lrs, momentum=0.9, weight_decay=3e-4)
        theirs = torch.optim.SGD(groups, lr=1.0, momentum=0.9, weight_decay=3e-4)
    elif kind == "adam":
        ours = Adam(lrs, weight_decay=1e-3)
        theirs = torch.optim.Adam(groups, lr=1.0, weight_decay=1e-3)
    else:
        ours = Adam(lrs, weight_decay=1e-2, decoupled=True)
        theirs = torch.optim.AdamW(groups, lr=1.0, weight_decay=1e-2)
    # numpy and torch parameters through our optimizer, torch.optim as the oracle
    for params in ({k: v.copy() for k, v in p0.items()},):
        _run_ours(ours, params, grads)
    for g in grads:
        for k in tp:
            tp[k].grad = torch.tensor(g[k])
        theirs.step()
    for k in p0:
        if kind == "adamw":
            # torch's AdamW decays by lr*wd*p before the Adam step; ours adds wd*p to the
            # step direction: identical to first order, equal to 1e-6 here
            assert np.allclose(params[k], tp[k].detach().numpy(), atol=1e-6)
        else:
            assert np.allclose(params[k], tp[k].detach().numpy(), atol=1e-12)


def test_optimizer_works_on_torch_tensors():
    p = {"W1": torch.ones(2, 2, dtype=torch.float64)}
    opt = SGD({"W1": 0.1}, momentum=0.9)
    opt.step(p, {"W1": torch.ones(2, 2, dtype=torch.float64)})
    opt.step(p, {"W1": torch.ones(2, 2, dtype=torch.float64)})
    assert torch.allclose(p["W1"], torch.full((2, 2), 1 - 0.1 - 0.1 * 1.9, dtype=torch.float64))


def test_cosine_schedule_matches_torch():
    base = [0.0625, 0.0375]
    ps = [torch.zeros(1, requires_grad=True) for _ in base]
    opt_t = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, base, strict=True)])
    sch_t = torch.optim.lr_scheduler.CosineAnnealingLR(opt_t, T_max=10, eta_min=2e-6)
    ours = SGD({"W1": base[0], "W2": base[1]}, momentum=0.0)
    sched = CosineSchedule(10, 2e-6)
    for epoch in range(10):
        sched.apply(ours, epoch)
        for g, name in zip(opt_t.param_groups, ("W1", "W2"), strict=True):
            assert math.isclose(ours.lr(name), g["lr"], rel_tol=1e-9)
        opt_t.step()
        sch_t.step()
    assert math.isclose(sched.lr(0.0625, 10), 2e-6)


def test_per_layer_rates():
    names = ["W1", "b1", "W2", "b2"]
    assert layer_learning_rates(names, [0.1, 0.2]) == {"W1": 0.1, "b1": 0.1, "W2": 0.2, "b2": 0.2}
    with pytest.raises(ConfigError, match="one learning rate per layer"):
        layer_learning_rates(names, [0.1])
