"""The DAC/ADC of a profile as per-layer :class:`~analogebl.plan.effects.StateQuantizer` s.

* input (DAC, ``dac.bits``): the data's full pixel range ``[(0 - mean)/std, (1 - mean)/std]``
  (over channels) is mapped onto the DAC's voltage range, so ``2**bits`` codes span it;
* hidden layers (ADC, ``adc.bits``): the clamp range ``[0, 1]`` = ``[v_low_V, v_high_V]``;
* output (ADC): the linear output's working range, ``[-1, 2]`` in state units [assumed: the
  one-hot targets 0/1 with room for overshoot].

Converter noise is input-referred: the DAC's ``noise_V`` becomes
``noise_V * (hi - lo) / (v_max_V - v_min_V)`` state units (its voltage range spans the codes),
the ADC's ``noise_lsb`` is ``noise_lsb * step`` of each layer's quantizer; both converters
may round stochastically (``stochastic_rounding``).

With tiles (``array.tile_rows`` / ``tile_cols``) the ADC converts the tiles' partial sums
instead (:mod:`analogebl.hardware.tiles`) and a hidden or output node's state is what the
DAC drives back onto the rows: those nodes get the DAC's bits, noise and rounding over the
same ranges.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from analogebl.hardware.profile import HardwareProfile
from analogebl.plan.effects import NudgeCurrent, StateQuantizer

__all__ = ["OUTPUT_RANGE", "nudge_current", "state_quantizers"]

OUTPUT_RANGE = (-1.0, 2.0)


def state_quantizers(
    prof: HardwareProfile, num_layers: int, mean, std
) -> list[StateQuantizer | None] | None:
    """One quantizer (or ``None``) per layer; ``None`` when neither converter quantizes."""
    g = prof.get
    dac = g("dac", "bits")
    node = "dac" if g("array", "tile_rows") or g("array", "tile_cols") else "adc"
    if not dac and not g(node, "bits"):
        return None
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    lo, hi = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
    qs: list[StateQuantizer | None] = [None]
    if dac:
        volts = g("dac", "v_max_V") - g("dac", "v_min_V")
        qs[0] = StateQuantizer.from_bits(dac, lo, hi, g("dac", "noise_V") * (hi - lo) / volts,
                                         g("dac", "stochastic_rounding"))  # fmt: skip

    def node_q(a: float, b: float) -> StateQuantizer | None:
        if not g(node, "bits"):
            return None
        q = StateQuantizer.from_bits(g(node, "bits"), a, b)
        if node == "dac":
            noise = g("dac", "noise_V") * (b - a) / (g("dac", "v_max_V") - g("dac", "v_min_V"))
        else:
            noise = g("adc", "noise_lsb") * q.step
        return replace(q, noise_std=noise, stochastic=g(node, "stochastic_rounding"))

    for _ in range(1, num_layers - 1):
        qs.append(node_q(0.0, 1.0))
    qs.append(node_q(*OUTPUT_RANGE))
    if all(q is None for q in qs):
        return None
    return qs


def nudge_current(prof: HardwareProfile, g_unit_out_S: float) -> NudgeCurrent | None:
    """The profile's nudging current source in state units (``None``: ideal). One unit of
    output field is the current ``g_unit v_read_V`` of the output crossbar (``g_unit_out_S``
    siemens per weight unit), so ``i_max = i_max_A / (g_unit v_read_V)``; ``nudge.bits``
    codes span ``+-i_max``."""
    bits, i_max_A = prof.get("nudge", "bits"), prof.get("nudge", "i_max_A")
    if not bits and math.isinf(i_max_A):
        return None
    per_unit_A = g_unit_out_S * prof.get("energy", "v_read_V")
    return NudgeCurrent(i_max_A / per_unit_A, 2 ** int(bits) if bits else None)
