"""Theory check: each rule's update against the exact gradient at the free equilibrium.

The exact gradient is computed by implicit differentiation at the fixed point
(:meth:`Backend.implicit_gradient`). For EP the theory predicts a relative error
``O(beta)`` for the positive/negative variants and ``O(beta^2)`` for the centered one;
the fitted log-log slope of error vs beta should be ~1 and ~2. TBP and RBP are swept over
their number of iterations instead (RBP tends to the exact gradient as it grows).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from analogebl.errors import ConfigError
from analogebl.learning.estimators import estimate, rule_states
from analogebl.learning.rules import EquilibriumPropagation, make_rule
from analogebl.network import Network
from analogebl.spec import HALF_DTYPES

__all__ = ["check_gradients", "check_model_gradients", "compare"]

# states a check holds at once at the least: the free state, the target and two nudged ones
_STATES_HELD = 4


def _count(key: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ConfigError(f"must be an integer >= 1, got {v!r}", key=key)


def _check_args(
    batch_size: int,
    seed: int,
    betas: list[float] | None,
    iterations: int,
    steps: list[int] | None = None,
    steps_key: str = "backprop_iterations",
) -> None:
    """Refuse a check the theory cannot run: counts < 1, a negative seed, a beta that is
    not a finite number > 0, a beta sweep with repeated values (the slope fit needs
    distinct ones)."""
    _count("batch_size", batch_size)
    _count("iterations", iterations)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"must be an integer >= 0, got {seed!r}", key="seed")
    if betas is not None:
        if len(betas) == 0:
            raise ConfigError("needs at least one value", key="betas")
        for b in betas:
            number = isinstance(b, int | float) and not isinstance(b, bool)
            if not number or not math.isfinite(b) or b <= 0:
                raise ConfigError(f"each beta must be a finite number > 0, got {b!r}", key="betas")
        if len(set(betas)) != len(betas):
            raise ConfigError(f"repeated values in {list(betas)!r}", key="betas")
    if steps is not None:
        if len(steps) == 0:
            raise ConfigError("needs at least one value", key=steps_key)
        for n in steps:
            _count(steps_key, n)


def _check_memory(what: str, state_values: int, itemsize: int) -> None:
    """Refuse (before allocating) a batch whose states alone exceed the machine's memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): nothing to compare
        return
    need = _STATES_HELD * state_values * itemsize
    if need > total:
        raise ConfigError(
            f"{what} needs at least {need / 2**30:.1f} GiB for its states, more than this "
            f"machine's {total / 2**30:.1f} GiB; use a smaller batch",
            key="batch_size",
        )


def compare(g: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[float, float]:
    """(relative error, cosine) of ``g`` against ``ref``, all parameters concatenated."""
    a = np.concatenate([g[k].ravel() for k in ref])
    b = np.concatenate([ref[k].ravel() for k in ref])
    rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return rel, cos


def _active_set_changes(b, s0, s1) -> int:
    """Number of hidden units whose clamp status (below 0 / inside / above 1) differs."""
    n = 0
    for k in range(1, b.plan.output):
        h0 = b.to_numpy(b.field(s0, k))
        h1 = b.to_numpy(b.field(s1, k))
        status0 = (h0 > 1).astype(int) - (h0 < 0)
        status1 = (h1 > 1).astype(int) - (h1 < 0)
        n += int(np.sum(status0 != status1))
    return n


def check_gradients(
    net: Network,
    rules: list[str],
    *,
    batch_size: int = 4,
    seed: int = 0,
    betas: list[float] | None = None,
    iterations: int = 2000,
    backprop_iterations: list[int] | None = None,
    tol: float = 1e-13,
) -> dict[str, Any]:
    """Compare each rule's estimate with the implicit gradient on random data.

    Inputs ``x ~ N(0, 1)`` and uniform random labels from ``seed``. The free phase is relaxed
    until the residual is below ``tol`` (or ``iterations``); contrastive phases run
    ``iterations`` iterations (converged, so the comparison isolates the beta bias).
    Returns the JSON-ready dict ``{"circuit", "free_residual", "rules": {...}}``.

    Raises
    ------
    ConfigError
        ``batch_size``, ``iterations`` or a ``backprop_iterations`` entry < 1, a negative
        ``seed``, a beta that is not a finite number > 0 or a repeated one, or a batch
        whose states alone would not fit in the machine's memory.
    """
    _check_args(batch_size, seed, betas, iterations, backprop_iterations)
    b = net.backend
    values = sum(math.prod(shape) for shape in net.plan.layer_shapes)
    itemsize = 2 if b.dtype in HALF_DTYPES else np.dtype(b.dtype).itemsize
    _check_memory(f"a batch of {batch_size}", batch_size * values, itemsize)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, *net.plan.layer_shapes[0]))
    y = rng.integers(0, net.plan.layer_shapes[-1][0], size=batch_size)
    target = b.one_hot(y)
    free = b.zero_state(x)
    for _ in range(max(1, iterations // 100)):
        free = b.relax(free, 100)
        if b.residual(free) < tol:
            break
    exact_b, cg_res = b.implicit_gradient(free, target)
    exact = {k: b.to_numpy(v) for k, v in exact_b.items()}
    betas = betas or [float(v) for v in np.logspace(-3, -1, 5)]
    backprop_iterations = backprop_iterations or [5, 15, 50, 200]
    out: dict[str, Any] = {
        "circuit": net.circuit.name,
        "backend": b.name,
        "dtype": b.dtype,
        "free_residual": b.residual(free),
        "implicit_solve_residual": cg_res,
        "rules": {},
    }
    for name in rules:
        entry: dict[str, Any] = {}
        if name in ("tbp", "rbp"):
            entry["iterations"] = backprop_iterations
            errs, coss = [], []
            for n_it in backprop_iterations:
                g, _ = estimate(b, make_rule(name, iterations=n_it), free, target)
                e, c = compare({k: b.to_numpy(v) for k, v in g.items()}, exact)
                errs.append(e)
                coss.append(c)
        else:
            rule_betas = [1.0] if name == "cl" else betas
            entry["betas"] = rule_betas
            errs, coss, flips = [], [], []
            for beta in rule_betas:
                rule = make_rule(name, None if name == "cl" else beta, iterations)
                g, _ = estimate(b, rule, free, target)
                e, c = compare({k: b.to_numpy(v) for k, v in g.items()}, exact)
                errs.append(e)
                coss.append(c)
                flips.append(
                    sum(_active_set_changes(b, free, s) for s in rule_states(b, rule, free, target))
                )
            # hard-sigmoid units that cross a clamp between the free and the nudged state
            # make E non-smooth along the path: the O(beta)/O(beta^2) theory holds only
            # where this is 0.
            entry["active_set_changes"] = flips
            if isinstance(make_rule(name), EquilibriumPropagation) and len(rule_betas) > 1:
                entry["slope"] = float(np.polyfit(np.log(rule_betas), np.log(errs), 1)[0])
        entry["rel_error"] = errs
        entry["cosine"] = coss
        out["rules"][name] = entry
    return out


def check_model_gradients(
    model: str,
    rules: list[str],
    *,
    hidden: int = 16,
    inputs: int = 12,
    classes: int = 4,
    batch_size: int = 4,
    seed: int = 0,
    betas: list[float] | None = None,
    iterations: int = 3000,
    points: int = 4,
    tol: float = 1e-14,
) -> dict[str, Any]:
    """The same check for a recurrent model (float64 torch, random data from ``seed``).

    ``d_ep`` is checked on the model with directed (non-symmetric) couplings, where it is
    meant to run; a rule whose theory does not cover the model gets ``{"error": why}``.
    ``bptt`` is swept over its unrolled steps.

    Raises
    ------
    ConfigError
        As :func:`check_gradients` (``hidden``, ``inputs``, ``classes``, ``points`` must be
        >= 1 too).
    """
    import torch

    _check_args(batch_size, seed, betas, iterations)
    for key, v in (("hidden", hidden), ("inputs", inputs), ("classes", classes)):
        _count(key, v)
    _count("points", points)
    _check_memory(f"a batch of {batch_size}", batch_size * (inputs + hidden + classes), 8)

    from analogebl.errors import ConfigError
    from analogebl.models import ModelSpec, RecurrentModel
    from analogebl.models.rules import (
        bptt_gradient,
        implicit_gradient,
        make_model_rule,
        model_estimate,
    )

    betas = betas or [float(v) for v in np.logspace(-3, -1, 5)]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, inputs, dtype=torch.float64, generator=gen)
    y = torch.nn.functional.one_hot(
        torch.randint(0, classes, (batch_size,), generator=gen), classes
    ).double()
    cache: dict[bool, tuple] = {}

    def setup(symmetric: bool):
        if symmetric not in cache:
            m = RecurrentModel(
                ModelSpec(model, inputs, hidden, classes, symmetric=symmetric),
                "float64",
                rng=np.random.default_rng(seed),
            )
            free = m.relax(x, iterations, tol)
            exact = implicit_gradient(m, x, y, free.h)
            cache[symmetric] = (m, free, {k: v.numpy() for k, v in exact.items()})
        return cache[symmetric]

    out: dict[str, Any] = {"model": model, "dtype": "float64", "rules": {}}
    for name in rules:
        m, free, exact = setup(name != "d_ep")
        entry: dict[str, Any] = {"free_steps": free.steps, "free_residual": free.residual}
        try:
            if name == "bptt":
                steps = [5, 15, 50, 200]
                entry["iterations"] = steps
                gs = [bptt_gradient(m, x, y, n) for n in steps]
            else:
                entry["betas"] = betas
                gs = [
                    model_estimate(
                        m,
                        make_model_rule(name, b, iterations, points=points),
                        x,
                        y,
                        free.h,
                        iterations,
                        tol,
                    )[0]
                    for b in betas
                ]
        except ConfigError as exc:
            out["rules"][name] = {"error": str(exc)}
            continue
        res = [compare({k: v.detach().numpy() for k, v in g.items()}, exact) for g in gs]
        entry["rel_error"] = [r[0] for r in res]
        entry["cosine"] = [r[1] for r in res]
        if name in ("p_ep", "n_ep", "c_ep", "vf_ep"):
            entry["slope"] = float(np.polyfit(np.log(betas), np.log(entry["rel_error"]), 1)[0])
        out["rules"][name] = entry
    return out
