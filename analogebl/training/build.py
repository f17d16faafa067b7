"""Study configuration -> the objects of a run: rule, network, optimizer, updater.

Every function reads the typed run configuration (:class:`analogebl.spec.RunSpec`, validated
when it is built) and builds one object; :mod:`analogebl.pipeline` calls them in order.
"""

from __future__ import annotations

import numpy as np

from analogebl.errors import ConfigError
from analogebl.learning import (
    ConstantSchedule,
    CosineSchedule,
    make_optimizer,
    make_rule,
)
from analogebl.network import Network
from analogebl.plan import derive_rng
from analogebl.spec import HALF_DTYPES, RunSpec
from analogebl.training.support import first_batch
from analogebl.training.trainer import FitOptions
from analogebl.training.updaters import CrossbarUpdater, IdealUpdater

__all__ = [
    "build_network",
    "build_optimizer",
    "build_rule",
    "build_schedule",
    "build_updater",
    "diagnostic_batch",
    "fit_options",
]


def _batch_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype of a run's data batches: the relaxation's, or float32 under a 16-bit
    one (NumPy has no bfloat16; the backend rounds the batch as it takes it)."""
    return np.dtype("float32" if dtype in HALF_DTYPES else dtype)


def build_rule(spec: RunSpec):
    """The run's rule: a circuit rule (``analogebl.learning.rules``) or, with a recurrent
    model, a model rule (``analogebl.models.rules``)."""
    r = spec.rule
    if spec.model is not None:
        from analogebl.models.rules import make_model_rule

        for key, value, default in (("schedule", r.schedule, None), ("nudge", r.nudge, "exact")):
            if value != default:
                raise ConfigError(
                    f"rule.{key} sets a circuit's relaxation; model {spec.model.name} "
                    "relaxes its own way",
                    key=f"rule.{key}",
                )

        return make_model_rule(
            r.name,
            r.beta,
            r.iterations,
            points=r.points,
            homeostasis=r.homeostasis,
            temperature=r.temperature,
        )
    if r.name in ("h_ep", "fn_ep", "vf_ep", "d_ep", "bptt"):  # the recurrent models' rules
        why = {
            "h_ep": "needs a holomorphic energy (analytic activations); circuit "
            f"{spec.circuit.name} clamps its layers with hard-sigmoid diodes",
            "fn_ep": "is built on the recurrent models' smooth Gibbs ensembles",
            "vf_ep": "is for fixed-point models without an energy",
            "d_ep": "is for directed (non-symmetric) couplings",
            "bptt": "is the recurrent models' baseline (circuits: tbp)",
        }[r.name]
        raise ConfigError(
            f"rule {r.name} {why}; set model.name (looped_mlp, toroidal_mlp, "
            "modern_eqprop) to use it",
            key="rule.name",
        )
    return make_rule(r.name, r.beta, r.iterations, r.schedule, r.nudge)


def build_network(spec: RunSpec, ds, profile=None):
    """The trainable thing of a run and its rule: a crossbar :class:`Network` built from
    ``spec.circuit`` (with ``profile``, the loaded hardware profile, compiled into its
    plan), or a :class:`~analogebl.models.ModelNetwork` from ``spec.model``."""
    rule = build_rule(spec)
    if spec.model is None:
        c = spec.circuit
        net = Network.from_catalog(
            c.name,
            in_channels=ds.in_channels,
            num_classes=ds.num_classes,
            width=c.width,
            gains=None if c.gains is None else list(c.gains),
            pool=c.pool,
            backend=spec.backend,
            dtype=spec.dtype,
            device=spec.device,
            seed=spec.seed,
            depth=c.depth,
            profile=profile,
            data_stats=(ds.mean, ds.std),
        )
        return net, rule
    from analogebl.models import ModelNetwork, ModelSpec
    from analogebl.models.rules import check_rule_applies

    m = spec.model
    model = ModelSpec(
        m.name,
        int(np.prod(ds.train_x.shape[1:])),
        m.hidden,
        ds.num_classes,
        alpha=m.alpha,
        symmetric=m.symmetric,
        spectral_cap=m.spectral_cap,
        cost=m.cost,
    )
    net = ModelNetwork(model, spec.dtype, spec.device, spec.seed, tol=m.tol)
    check_rule_applies(rule, net.model)
    return net, rule


def diagnostic_batch(ds, spec: RunSpec) -> np.ndarray:
    """The first (up to) 256 training images, normalized: where per-epoch diagnostics
    (spectral norms, Lipschitz estimates) are measured."""
    return first_batch(ds, 256, spec.data.pad_to, _batch_dtype(spec.dtype))[0]


def build_optimizer(spec: RunSpec, net):
    """The run's optimizer over the network's parameters (``learning.make_optimizer``)."""
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    hidden, dense = net.coupling_roles()
    return make_optimizer(spec.optimizer, shapes, hidden, dense,
                          rng=derive_rng(spec.seed, "optimizer/dion"))  # fmt: skip


def build_updater(net, optimizer, seed: int):
    """:class:`IdealUpdater` without a profile in the network's plan or with an ideal one,
    else a :class:`CrossbarUpdater` on that profile's devices."""
    profile = getattr(getattr(net, "plan", None), "profile", None)
    if profile is None or profile.is_ideal:
        return IdealUpdater(optimizer)
    return CrossbarUpdater(net.backend, optimizer, seed)


def build_schedule(spec: RunSpec):
    """The learning-rate schedule: cosine to ``optimizer.eta_min`` over the epochs, or none."""
    if spec.optimizer.schedule == "cosine":
        return CosineSchedule(spec.epochs, spec.optimizer.eta_min)
    return ConstantSchedule()


def fit_options(spec: RunSpec, ds, checkpoint_seconds: float | None, progress: bool | str | None):
    """:class:`FitOptions` from the run (``checkpoint_seconds`` overrides
    ``checkpoint_minutes``; ``progress=None``: on, which is a bar when stderr is a terminal
    and a plain line about every 30 s otherwise, :mod:`analogebl.training.progress`;
    ``"lines"``: plain lines even on a terminal)."""
    from analogebl.data import DEFAULT_AUGMENTATION

    every_s = spec.checkpoint_minutes * 60.0 if checkpoint_seconds is None else checkpoint_seconds
    d = spec.data
    return FitOptions(
        epochs=spec.epochs,
        batch_size=d.batch_size,
        eval_batch_size=d.eval_batch_size,
        dtype=_batch_dtype(spec.dtype),
        pad_to=d.pad_to,
        augmentation=DEFAULT_AUGMENTATION[ds.name] if d.augment else None,
        checkpoint_seconds=every_s,
        measure_memory=spec.measure_memory,
        probes=spec.probes if spec.circuit is not None else 0,
        progress=True if progress is None else progress,
    )
