"""The DAC/ADC of a profile as per-layer :class:`~analogebl.plan.effects.StateQuantizer` s.

* input (DAC, ``dac.bits``): the data's full pixel range ``[(0 - mean)/std, (1 - mean)/std]``
  (over channels) is mapped onto the DAC's voltage range, so ``2**bits`` codes span it;
* hidden layers (ADC, ``adc.bits``): the clamp range ``[0, 1]`` = ``[v_low_V, v_high_V]``;
* output (ADC): the linear output's working range, ``[-1, 2]`` in state units [assumed: the
  one-hot targets 0/1 with room for overshoot].
"""

from __future__ import annotations

import numpy as np

from analogebl.hardware.profile import HardwareProfile
from analogebl.plan.effects import StateQuantizer

__all__ = ["OUTPUT_RANGE", "state_quantizers"]

OUTPUT_RANGE = (-1.0, 2.0)


def state_quantizers(
    prof: HardwareProfile, num_layers: int, mean, std
) -> list[StateQuantizer | None] | None:
    """One quantizer (or ``None``) per layer; ``None`` when neither converter quantizes."""
    dac, adc = prof.get("dac", "bits"), prof.get("adc", "bits")
    if not dac and not adc:
        return None
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    lo, hi = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
    qs: list[StateQuantizer | None] = [StateQuantizer.from_bits(dac, lo, hi) if dac else None]
    for _ in range(1, num_layers - 1):
        qs.append(StateQuantizer.from_bits(adc) if adc else None)
    qs.append(StateQuantizer.from_bits(adc, *OUTPUT_RANGE) if adc else None)
    return qs
