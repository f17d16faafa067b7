"""③ Analog hardware: profiles (TOML), device models, crossbar mapping and readouts.

* :func:`load_profile` / :func:`list_profiles` — ``hardware_profiles/*.toml`` with
  inheritance and strict validation;
* :class:`Crossbars` — every parameter as a differential pair of :class:`DeviceArray` s,
  updates as pulses (:mod:`analogebl.hardware.pulses`), read noise, drift, power;
* :func:`state_quantizers` — the DAC/ADC of a profile as per-layer state quantizers.
"""

from analogebl.hardware.crossbar import Crossbars, UpdateStats, device_params
from analogebl.hardware.devices import DeviceArray, DeviceParams
from analogebl.hardware.profile import HardwareProfile, list_profiles, load_profile
from analogebl.hardware.quantize import state_quantizers

__all__ = [
    "Crossbars",
    "DeviceArray",
    "DeviceParams",
    "HardwareProfile",
    "UpdateStats",
    "device_params",
    "list_profiles",
    "load_profile",
    "state_quantizers",
]
