"""Helpers of the trainer: nested <-> flat state, run-file rows, time and memory readouts."""

from __future__ import annotations

import sys
from typing import Any

from analogebl.training.results import EpochResult

__all__ = ["epoch_results", "flatten", "fmt_seconds", "peak_memory", "unflatten"]


def flatten(tree: dict[str, Any], sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}`` (the checkpoint's array names; ``sep="."``:
    a TOML document's dotted keys)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, sep, f"{prefix}{k}{sep}"))
        else:
            out[prefix + k] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group ``"group/name..."`` keys by their first segment (names keep their slashes)."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in flat.items():
        group, _, name = k.partition("/")
        out.setdefault(group, {})[name] = v
    return out


def epoch_results(metrics: dict[str, Any], epochs: int) -> list[EpochResult]:
    """The first ``epochs`` :class:`EpochResult` rows of a run file's metrics."""
    keys = ("epoch", "train_error", "train_cost", "test_error", "seconds")
    return [
        EpochResult(*(int(metrics[k][e]) if k == "epoch" else float(metrics[k][e]) for k in keys))
        for e in range(epochs)
    ]


def fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def peak_memory(fn):
    """Run ``fn`` and return ``(result, peak MB of array memory it allocated)``: tracemalloc's
    peak (NumPy reports its buffers to it: the reference and numba backends) or, on CUDA,
    torch's peak allocated bytes; NaN for torch on the CPU (its allocator is invisible)."""
    import tracemalloc

    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    return out, peak / 2**20


def first_batch(ds, n: int, pad_to, dtype) -> tuple[Any, Any]:
    """The first (up to) ``n`` training images of ``ds``, normalized and padded as training
    reads them (no augmentation), and their labels: the fixed batches per-epoch diagnostics
    and probes are measured on."""
    from analogebl.data import iterate_batches

    n = min(n, len(ds.train_y))
    batches = iterate_batches(ds.train_x[:n], ds.train_y[:n], n, rng=None, mean=ds.mean,
                              std=ds.std, pad_to=pad_to, augmentation=None,
                              dtype=dtype)  # fmt: skip
    return next(iter(batches))
