"""Study configuration -> the objects of a run: rule, network, optimizer, updater.

Every function reads the resolved study keys (``cfg``: dotted key -> value, validated by
:mod:`analogebl.study.config`) and builds one object; :mod:`analogebl.pipeline` calls them in
order.
"""

from __future__ import annotations

import numpy as np

from analogebl.data import iterate_batches
from analogebl.errors import ConfigError
from analogebl.learning import (
    ConstantSchedule,
    CosineSchedule,
    layer_learning_rates,
    make_optimizer,
    make_rule,
)
from analogebl.network import Network
from analogebl.plan import derive_rng
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


def build_rule(cfg: dict):
    """The run's rule: a circuit rule (``analogebl.learning.rules``) or, with ``model.name``,
    a recurrent-model rule (``analogebl.models.rules``)."""
    name = cfg["rule.name"]
    if cfg["model.name"] is not None:
        from analogebl.models.rules import make_model_rule

        return make_model_rule(
            name,
            cfg["rule.beta"],
            cfg["rule.iterations"],
            points=cfg["rule.points"],
            homeostasis=cfg["rule.homeostasis"],
            temperature=cfg["rule.temperature"],
        )
    if name in ("h_ep", "fn_ep", "vf_ep", "d_ep", "bptt"):  # the recurrent models' rules
        why = {
            "h_ep": "needs a holomorphic energy (analytic activations); circuit "
            f"{cfg['circuit.name']} clamps its layers with hard-sigmoid diodes",
            "fn_ep": "is built on the recurrent models' smooth Gibbs ensembles",
            "vf_ep": "is for fixed-point models without an energy",
            "d_ep": "is for directed (non-symmetric) couplings",
            "bptt": "is the recurrent models' baseline (circuits: tbp)",
        }[name]
        raise ConfigError(
            f"rule {name} {why}; set model.name (looped_mlp, toroidal_mlp, "
            "modern_eqprop) to use it",
            key="rule.name",
        )
    return make_rule(name, cfg["rule.beta"], cfg["rule.iterations"])


def build_network(cfg: dict, ds, seed: int):
    """The trainable thing of a run and its rule: a crossbar :class:`Network` built from
    ``circuit.*``, or a :class:`~analogebl.models.ModelNetwork` from ``model.*``."""
    rule = build_rule(cfg)
    if cfg["model.name"] is None:
        net = Network.from_catalog(
            cfg["circuit.name"],
            in_channels=ds.in_channels,
            num_classes=ds.num_classes,
            width=cfg["circuit.width"],
            gains=cfg["circuit.gains"],
            pool=cfg["circuit.pool"],
            backend=cfg["backend"],
            dtype=cfg["dtype"],
            device=cfg["device"],
            seed=seed,
            depth=cfg["circuit.depth"],
        )
        return net, rule
    from analogebl.models import ModelNetwork, ModelSpec
    from analogebl.models.rules import check_rule_applies

    if cfg["profile"] != "none":
        raise ConfigError(
            "hardware profiles apply to crossbar circuits, not to recurrent models", key="profile"
        )
    spec = ModelSpec(
        cfg["model.name"],
        int(np.prod(ds.train_x.shape[1:])),
        cfg["model.hidden"],
        ds.num_classes,
        alpha=cfg["model.alpha"],
        symmetric=cfg["model.symmetric"],
        spectral_cap=cfg["model.spectral_cap"],
        cost=cfg["model.cost"],
    )
    net = ModelNetwork(spec, cfg["dtype"], cfg["device"], seed, tol=cfg["model.tol"])
    check_rule_applies(rule, net.model)
    return net, rule


def diagnostic_batch(ds, cfg: dict, dtype) -> np.ndarray:
    """The first (up to) 256 training images, normalized: where per-epoch diagnostics
    (spectral norms, Lipschitz estimates) are measured."""
    n = min(256, len(ds.train_y))
    xb, _ = next(
        iter(
            iterate_batches(
                ds.train_x[:n],
                ds.train_y[:n],
                n,
                rng=None,
                mean=ds.mean,
                std=ds.std,
                pad_to=cfg["pad_to"],
                augmentation=None,
                dtype=dtype,
            )
        )
    )
    return xb


def build_optimizer(cfg: dict, net, seed: int):
    """The study's optimizer over the network's parameters (see ``make_optimizer``)."""
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    names = list(shapes)
    hidden, dense = net.coupling_roles()
    scale = cfg["optimizer.lr_scale"]  # a tuning grid multiplies every rate
    lrs = {k: v * scale for k, v in layer_learning_rates(names, cfg["optimizer.lr"]).items()}
    adam_lrs = {
        k: v * scale for k, v in layer_learning_rates(names, cfg["optimizer.adam_lr"]).items()
    }
    return make_optimizer(
        cfg["optimizer.name"],
        lrs,
        shapes,
        hidden,
        dense,
        adam_lrs=adam_lrs,
        momentum=cfg["optimizer.momentum"],
        weight_decay=cfg["optimizer.weight_decay"],
        spectral_cap=cfg["optimizer.spectral_cap"],
        ns_steps=cfg["optimizer.ns_steps"],
        nesterov=cfg["optimizer.nesterov"],
        rank_frac=cfg["optimizer.rank_frac"],
        dion_threshold=cfg["optimizer.dion_threshold"],
        damping=cfg["optimizer.damping"],
        kfac_decay=cfg["optimizer.kfac_decay"],
        rng=derive_rng(seed, "optimizer/dion"),
    )


def build_updater(profile, net, optimizer, ds, seed: int):
    """:class:`IdealUpdater` without a profile or with an ideal one, else a
    :class:`CrossbarUpdater` on ``profile``'s devices."""
    if profile is None or profile.is_ideal:
        return IdealUpdater(optimizer)
    return CrossbarUpdater(profile, net.backend, optimizer, ds.mean, ds.std, seed)


def build_schedule(cfg: dict):
    """The learning-rate schedule: cosine to ``optimizer.eta_min`` over the epochs, or none."""
    if cfg["optimizer.schedule"] == "cosine":
        return CosineSchedule(cfg["epochs"], cfg["optimizer.eta_min"])
    return ConstantSchedule()


def fit_options(cfg: dict, ds, checkpoint_seconds: float | None, progress: bool | None):
    """:class:`FitOptions` from the study (``checkpoint_seconds`` overrides
    ``checkpoint_minutes``; ``progress=None``: a bar when stderr is a terminal)."""
    import sys

    from analogebl.data import DEFAULT_AUGMENTATION

    every_s = cfg["checkpoint_minutes"] * 60.0 if checkpoint_seconds is None else checkpoint_seconds
    return FitOptions(
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        eval_batch_size=cfg["eval_batch_size"],
        dtype=np.dtype(cfg["dtype"]),
        pad_to=cfg["pad_to"],
        augmentation=DEFAULT_AUGMENTATION[ds.name] if cfg["augment"] else None,
        checkpoint_seconds=every_s,
        measure_memory=cfg["measure_memory"],
        progress=sys.stderr.isatty() if progress is None else progress,
    )
