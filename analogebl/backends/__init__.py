"""⑤ Backends: ``reference`` (NumPy oracle), ``numba`` (CPU) and ``torch`` (CPU/CUDA) share
one engine (:mod:`analogebl.backends.engine`).

``make_backend("auto", ...)`` picks, by measurement on 2-core CPUs (``benchmarks/``):

* torch on CUDA when a GPU is there (or ``device`` names one);
* numba on the CPU for circuits of dense couplings only (BLAS GEMMs and compiled phases:
  dhn_mnist C-EP steps 3.2x / 2.2x / 2.2x torch's samples/s at batch 1 / 8 / 128);
* torch on the CPU for circuits with convolutions: oneDNN's direct convolutions run at
  about 95 % of the GEMM peak, numba's per-tap GEMMs (or im2col + GEMM) and pooling kernels
  at about 45 % (width-0.25 DCHN C-EP step at batch 32: numba 26.8, torch 56-59 samples/s).

The choice is logged at WARNING level (visible by default) once per distinct outcome, as
brian2 does for its code-generation target: name a backend to pick one explicitly.
"""

from __future__ import annotations

import logging

from analogebl.backends.engine import Backend
from analogebl.errors import ConfigError
from analogebl.plan import Plan
from analogebl.spec import check_device as spec_check_device

__all__ = ["BACKENDS", "Backend", "auto_backend", "check_device", "make_backend"]

BACKENDS = ("auto", "reference", "torch", "numba")
_log = logging.getLogger(__name__)
_logged: set[str] = set()


def check_device(backend: str, device: str | None, key: str = "device") -> None:
    """Refuse (:class:`ConfigError` naming ``key``) a ``device`` that ``backend`` would not
    run on, or that this machine lacks: a name other than cpu / cuda / cuda:N, a GPU for
    numba or the reference backend (CPU only), CUDA where torch has none, or a CUDA index
    beyond the devices present. ``None`` (the backend's choice) always passes."""
    spec_check_device(backend, device, key)
    if device is None or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else (
            "no CUDA device is visible"
        )  # fmt: skip
        raise ConfigError(f"device {device!r} is not available: {why} (use cpu)", key=key)
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"device {device!r} is not available: this machine has {count} CUDA device(s) "
            f"(cuda:0..cuda:{count - 1})",
            key=key,
        )


def auto_backend(plan: Plan, device: str | None = None) -> tuple[str, str | None]:
    """The (backend, device) that ``"auto"`` resolves to for ``plan`` (see module docstring)."""
    if device is None or device.startswith("cuda"):
        import torch

        if device is not None or torch.cuda.is_available():
            return "torch", device or "cuda"
    if any(c.kind == "conv" for c in plan.couplings):
        return "torch", device or "cpu"
    return "numba", None


def make_backend(
    name: str, plan: Plan, dtype: str = "float32", device: str | None = None
) -> Backend:
    """Instantiate backend ``name`` for ``plan`` on ``device`` (checked by
    :func:`check_device` first)."""
    check_device(name, device)
    if name == "auto":
        name, device = auto_backend(plan, device)
        msg = f"backend auto -> {name} on {device or 'cpu'}"
        if msg not in _logged:
            _log.warning(msg)
            _logged.add(msg)
    if name == "reference":
        from analogebl.backends.reference import ReferenceBackend

        return ReferenceBackend(plan, dtype, device)
    if name == "numba":
        from analogebl.backends.numba import NumbaBackend

        return NumbaBackend(plan, dtype, device)
    if name == "torch":
        from analogebl.backends.torch import TorchBackend

        return TorchBackend(plan, dtype, device)
    raise ConfigError(
        f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", key="backend"
    )
