"""⑤ Backends: ``reference`` (NumPy oracle) and ``torch`` (CPU/CUDA) share one engine.

``make_backend("auto", ...)`` picks torch on CUDA when available, otherwise torch on the CPU
(the numba CPU backend will take the CPU role when it lands); the choice is logged once.
"""

from __future__ import annotations

import logging

from analogebl.backends.engine import Backend
from analogebl.errors import ConfigError
from analogebl.plan import Plan

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("auto", "reference", "torch")
_log = logging.getLogger(__name__)
_logged: set[str] = set()


def make_backend(name: str, plan: Plan, dtype: str = "float32",
                 device: str | None = None) -> Backend:
    """Instantiate backend ``name`` for ``plan``."""
    if name == "auto":
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        msg = f"backend auto -> torch on {device}"
        if msg not in _logged:
            _log.info(msg)
            _logged.add(msg)
        name = "torch"
    if name == "reference":
        from analogebl.backends.reference import ReferenceBackend

        return ReferenceBackend(plan, dtype, device)
    if name == "torch":
        from analogebl.backends.torch import TorchBackend

        return TorchBackend(plan, dtype, device)
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}",
                      key="backend")
