"""⑦ Conductance updates: a coupling's desired dW becomes pulse counts on its devices
(:mod:`analogebl.update.pulses`), applied through the device response
(:mod:`analogebl.hardware.devices`)."""

from analogebl.update.pulses import pulse_counts, split_pair

__all__ = ["pulse_counts", "split_pair"]
