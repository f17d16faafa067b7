"""Diagnostics above :mod:`analogebl.network` and :mod:`analogebl.models`: checks of the
learning rules against exact gradients (:mod:`analogebl.diagnostics.gradcheck`)."""
