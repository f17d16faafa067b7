"""Gradient-fidelity probes: does a rule's signal survive the hardware?

Once per epoch, on a fixed probe batch ``(x, y)`` of training images, at the weights ``W``
the crossbars present now (with their IR drop, without read noise), the probe measures for
every parameter tensor ``k``:

* ``probe_cos_estimate_k``: cosine between the rule's estimate ``g_k`` (its phases run on
  the circuit as training runs them: tiles, converters, read noise, node clamps) and the
  implicit gradient ``g*_k = dL/dW_k`` of the same circuit at the same weights, computed with
  exact reads and no read noise (:meth:`~analogebl.backends.gradients.implicit_gradient`);
* ``probe_cos_realised_k`` and ``probe_norm_realised_k``: the *realised* update
  ``dW_k = W_k(after) - W_k`` when the plain step ``-eta_k g_k`` is written into a copy of the
  devices as pulses (levels, pulse response, cycle noise, stuck devices, IR drop of the new
  conductances), its cosine with ``-eta_k g*_k`` and its norm relative to ``|eta_k g*_k|``
  (1 and 1 for an ideal rule on ideal devices);
* ``probe_idle_k``: the fraction of the tensor's devices that this update left without a
  pulse.

And for every layer ``l`` after the input:

* ``probe_contrast_rms_l``: the RMS over the batch and the layer's nodes of the contrast
  ``s2 - s1`` between the rule's two states (contrastive rules; the signal EP/CpL/CL learn
  from);
* ``probe_noise_rms_l``: the RMS difference between two free relaxations of the same batch
  from the same start divided by ``sqrt 2``: the spread of one equilibrium under the read
  noise and converter noise drawn per phase or per read (0 without either). A contrast below
  it is noise;
* ``probe_lsb_l``: the step of the node converter that writes layer ``l`` (0 without one),
  and ``probe_tile_lsb_c`` the step of the tile ADC of coupling ``c`` in field units.

Nothing of the run changes: the random generators, the read-noise draw and the warm start
are restored, and the realised update is written into a copy of the crossbars. Cost: about
three training steps on the probe batch (two free phases and the rule's phases on the
circuit, one exact free phase and the implicit gradient's linear solve).
"""

from __future__ import annotations

import copy
import math

import numpy as np

__all__ = ["gradient_fidelity"]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum a b`` exactly rounded (``math.fsum``): a BLAS dot's last bits depend on the
    arrays' memory alignment, which a resumed run does not reproduce."""
    return math.fsum((np.asarray(a, np.float64) * np.asarray(b, np.float64)).ravel().tolist())


def _norm(a: np.ndarray) -> float:
    return math.sqrt(_dot(a, a))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = _norm(a), _norm(b)
    return _dot(a, b) / (na * nb) if na > 0 and nb > 0 else math.nan


def _rms(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return math.sqrt(_dot(a, a) / a.size) if a.size else math.nan


def _rngs(updater) -> list[np.random.Generator]:
    return [getattr(updater, k) for k in ("rng_update", "rng_read", "rng_convert")
            if getattr(updater, k, None) is not None]  # fmt: skip


def gradient_fidelity(
    net,
    rule,
    updater,
    x: np.ndarray,
    y: np.ndarray,
    free_iterations: int,
    schedule: str = "async",
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """The probe metrics (module docstring) of ``rule`` on ``net`` at its current weights.

    Parameters
    ----------
    net : analogebl.network.Network
    rule : analogebl.learning.Rule
    updater : IdealUpdater or CrossbarUpdater
        Its optimizer gives each tensor's rate ``eta_k``; a ``CrossbarUpdater``'s crossbars
        (copied) realise the update.
    x, y : ndarray
        The probe batch (normalised images, labels).
    free_iterations : int
    schedule : str
    rng : numpy Generator, optional
        Draws of the probe's own pulses (stochastic rounding, cycle noise) on the copy;
        default a fixed seed.

    Returns
    -------
    dict of str to float
    """
    from analogebl.learning.estimators import estimate

    b = net.backend
    plan = b.plan
    saved_rng = [g.bit_generator.state for g in _rngs(updater)]
    saved_draw = b.read_noise_draw()
    saved_warm = getattr(net, "_warm", None)
    out: dict[str, float] = {}
    try:
        target = b.one_hot(y)
        start = b.zero_state(x)
        contrast: dict[str, np.ndarray] = {}

        def observer(free, s1, s2, b1, b2):
            for l in range(1, plan.num_layers):
                contrast[plan.layer_names[l]] = b.to_numpy(s2[l]) - b.to_numpy(s1[l])

        if hasattr(updater, "begin_step"):
            updater.begin_step()
        free = b.relax(start, free_iterations, schedule)
        again = b.relax(start, free_iterations, schedule)
        g_rule, _ = estimate(b, rule, free, target, schedule, observer)
        g_rule = {k: b.to_numpy(v).astype(np.float64) for k, v in g_rule.items()}

        # the circuit's exact gradient at the same weights: exact reads, no read noise
        noise, noise_rng = b.read_noise, getattr(b, "_noise_rng", None)
        b.set_read_noise(None)
        try:
            with b.exact_reads():
                exact = b.relax(start, free_iterations, schedule)
                g_true, _ = b.implicit_gradient(exact, target, 1e-8)
        finally:
            b.set_read_noise(noise, noise_rng)
            b.set_read_noise_draw(saved_draw)
        g_true = {k: b.to_numpy(v).astype(np.float64) for k, v in g_true.items()}

        lr = {k: float(updater.optimizer.lr(k)) for k in g_rule}
        want = {k: -lr[k] * g_rule[k] for k in g_rule}
        xbar = getattr(updater, "xbar", None)
        if xbar is not None:
            twin = copy.deepcopy(xbar)
            before = twin.weights()
            stats = twin.apply(want, rng or np.random.default_rng(0))
            after = twin.weights()
            realised = {k: after[k] - before[k] for k in want}
            idle = stats.idle or {}
        else:
            realised, idle = want, {}
        for k in sorted(g_rule):
            ideal = -lr[k] * g_true[k]
            out[f"probe_cos_estimate_{k}"] = _cos(g_rule[k], g_true[k])
            out[f"probe_cos_realised_{k}"] = _cos(realised[k], ideal)
            n = _norm(ideal)
            out[f"probe_norm_realised_{k}"] = _norm(realised[k]) / n if n > 0 else math.nan
            if k in idle:
                out[f"probe_idle_{k}"] = idle[k]
        quant = getattr(b, "_quant", None) or (None,) * plan.num_layers
        for l in range(1, plan.num_layers):
            name = plan.layer_names[l]
            if name in contrast:
                out[f"probe_contrast_rms_{name}"] = _rms(contrast[name])
            d = b.to_numpy(again[l]).astype(np.float64) - b.to_numpy(free[l])
            out[f"probe_noise_rms_{name}"] = _rms(d) / math.sqrt(2.0)
            q = quant[l]
            out[f"probe_lsb_{name}"] = float(q.step) if q is not None else 0.0
        for c in plan.couplings:
            t = (getattr(b, "_tiles", None) or {}).get(c.name)
            if t is not None and t.forward is not None:
                out[f"probe_tile_lsb_{c.name}"] = float(t.forward.step)
    finally:
        for g, st in zip(_rngs(updater), saved_rng, strict=True):
            g.bit_generator.state = st
        b.set_read_noise_draw(saved_draw)
        if hasattr(net, "_warm"):
            net._warm = saved_warm
    return out
