"""The whole flow on one page: dataset -> circuit -> plan -> backend -> rule -> update.

:func:`run_training` trains a network as a resolved study describes and evaluates it on the
test set after every epoch (zero-initialised relaxation, argmax of the output, the
reference's protocol).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analogebl.data import DEFAULT_AUGMENTATION, iterate_batches, load_dataset, num_batches
from analogebl.errors import DivergenceError
from analogebl.learning import (
    SGD,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    layer_learning_rates,
    make_rule,
)
from analogebl.network import Network
from analogebl.plan import derive_rng
from analogebl.study.config import StudyConfig

__all__ = ["EpochResult", "TrainingResult", "evaluate", "run_training"]


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_error: float
    train_cost: float
    test_error: float
    seconds: float


@dataclass
class TrainingResult:
    epochs: list[EpochResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def test_error(self) -> float:
        return self.epochs[-1].test_error if self.epochs else math.nan


def evaluate(net: Network, x_uint8: np.ndarray, y: np.ndarray, *, mean, std,
             pad_to: int | None, iterations: int, batch_size: int, dtype) -> float:
    """Test error: relax every batch from zero for ``iterations`` and take the argmax."""
    wrong = 0
    for xb, yb in iterate_batches(x_uint8, y, batch_size, rng=None, mean=mean, std=std,
                                  pad_to=pad_to, augmentation=None, dtype=dtype):
        wrong += int(np.sum(net.predict(xb, iterations) != yb))
    return wrong / len(y)


def _optimizer(cfg: dict, names: list[str]):
    lrs = layer_learning_rates(names, cfg["optimizer.lr"])
    if cfg["optimizer.name"] == "sgd":
        return SGD(lrs, cfg["optimizer.momentum"], cfg["optimizer.weight_decay"])
    return Adam(lrs, weight_decay=cfg["optimizer.weight_decay"],
                decoupled=cfg["optimizer.name"] == "adamw")


def run_training(study: StudyConfig, log: Callable[[str], None] | None = None,
                 progress: bool | None = None) -> TrainingResult:
    """Train and evaluate as ``study`` says; ``log`` receives one line per epoch."""
    cfg = study.as_dict()
    log = log or (lambda s: None)
    seed = cfg["seed"]
    ds = load_dataset(cfg["dataset"], train_subset=cfg["train_subset"],
                      test_subset=cfg["test_subset"], subset_seed=seed)
    net = Network.from_catalog(cfg["circuit.name"], in_channels=ds.in_channels,
                               num_classes=ds.num_classes, width=cfg["circuit.width"],
                               gains=cfg["circuit.gains"], pool=cfg["circuit.pool"],
                               backend=cfg["backend"], dtype=cfg["dtype"],
                               device=cfg["device"], seed=seed)
    rule = make_rule(cfg["rule.name"], cfg["rule.beta"], cfg["rule.iterations"])
    opt = _optimizer(cfg, list(net.parameters()))
    epochs = cfg["epochs"]
    sched = (CosineSchedule(epochs, cfg["optimizer.eta_min"])
             if cfg["optimizer.schedule"] == "cosine" else ConstantSchedule())
    aug = DEFAULT_AUGMENTATION[ds.name] if cfg["augment"] else None
    free_it = cfg["relaxation.free_iterations"]
    schedule = cfg["relaxation.schedule"]
    np_dtype = np.dtype(cfg["dtype"])
    if progress is None:
        progress = sys.stderr.isatty()
    result = TrainingResult()
    t_start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sched.apply(opt, epoch)
        rng = derive_rng(seed, f"data/order/epoch{epoch}")
        batches = iterate_batches(ds.train_x, ds.train_y, cfg["batch_size"], rng=rng,
                                  mean=ds.mean, std=ds.std, pad_to=cfg["pad_to"],
                                  augmentation=aug, dtype=np_dtype)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=num_batches(len(ds.train_y), cfg["batch_size"]),
                       desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stderr)
        n_seen = cost_sum = err_sum = 0.0
        for step, (xb, yb) in enumerate(batches):
            m = net.train_step(xb, yb, rule, opt, free_it, schedule)
            bad = net.backend.check_finite(net._warm)
            if bad is not None or not math.isfinite(m["cost"]):
                raise DivergenceError(
                    f"NaN/Inf in {bad or 'the output'} at epoch {epoch + 1}, step {step + 1} "
                    f"(rule {rule.name}); lower the learning rates or beta")
            n = len(yb)
            n_seen += n
            cost_sum += m["cost"] * n
            err_sum += m["error"] * n
            if bar is not None:
                bar.update(1)
                bar.set_postfix(err=f"{err_sum / n_seen:.3f}", cost=f"{cost_sum / n_seen:.3f}")
        if bar is not None:
            bar.close()
        test_err = evaluate(net, ds.test_x, ds.test_y, mean=ds.mean, std=ds.std,
                            pad_to=cfg["pad_to"], iterations=free_it,
                            batch_size=cfg["eval_batch_size"], dtype=np_dtype)
        r = EpochResult(epoch + 1, err_sum / n_seen, cost_sum / n_seen, test_err,
                        time.perf_counter() - t0)
        result.epochs.append(r)
        log(f"epoch {r.epoch}/{epochs}  train_error {100 * r.train_error:6.2f}%  "
            f"cost {r.train_cost:.4f}  test_error {100 * r.test_error:6.2f}%  "
            f"({r.seconds:.1f} s)")
    result.seconds = time.perf_counter() - t_start
    result.network = net  # type: ignore[attr-defined]
    return result
