"""Diagnostics above :mod:`analogebl.network` and :mod:`analogebl.models`: checks of the
learning rules against exact gradients (:mod:`analogebl.diagnostics.gradcheck`) and the
per-epoch gradient-fidelity probes of a training run (:mod:`analogebl.diagnostics.probes`)."""
