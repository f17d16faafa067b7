"""Seeded batch order, the reference's augmentation and normalisation, vectorised over a batch.

Per sample, in this order (``ebl_algorithms.md`` §4.3)::

    x = pixels / 255
    x = zero-pad to ``pad_to`` (MNIST/F-MNIST 28 -> 32, before normalising, so the border
        becomes (0 - mean) / std)
    x = random crop: edge-pad by ``crop_padding`` and take a window of the original size
    x = horizontal flip with probability 1/2
    x = (x - mean[c]) / std[c]

Random flip and random crop commute in distribution (the crop offset is symmetric), so the
flip-before-crop order of the reference's CIFAR pipeline is reproduced in distribution.
All random draws of an epoch (permutation, crop offsets, flips) are taken up front from one
generator, so ``start_batch`` resumes an epoch mid-way with exactly the batches it would have
produced.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_AUGMENTATION", "Augmentation", "iterate_batches", "num_batches"]


@dataclass(frozen=True)
class Augmentation:
    """Random crop with edge padding ``crop_padding`` (0: none) and optional horizontal flip."""

    crop_padding: int = 0
    horizontal_flip: bool = False

    def __post_init__(self):
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")


DEFAULT_AUGMENTATION = {
    "mnist": Augmentation(crop_padding=2),
    "fmnist": Augmentation(crop_padding=2, horizontal_flip=True),
    "svhn": Augmentation(crop_padding=4),
    "cifar10": Augmentation(crop_padding=4, horizontal_flip=True),
    "cifar100": Augmentation(crop_padding=4, horizontal_flip=True),
}


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches an epoch of ``n`` samples gives."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _zero_pad(x: np.ndarray, pad_to: int) -> np.ndarray:
    h, w = x.shape[-2:]
    if h > pad_to or w > pad_to:
        raise ValueError(f"cannot pad {h}x{w} images to {pad_to}")
    top, left = (pad_to - h) // 2, (pad_to - w) // 2
    return np.pad(x, ((0, 0), (0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))


def _crop(x: np.ndarray, pad: int, oy: np.ndarray, ox: np.ndarray) -> np.ndarray:
    """out[n, c, i, j] = edgepad(x)[n, c, oy[n] + i, ox[n] + j]."""
    n, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    rows = (oy[:, None] + np.arange(h))[:, None, :, None]
    cols = (ox[:, None] + np.arange(w))[:, None, None, :]
    ch = np.arange(x.shape[1])[None, :, None, None]
    return xp[np.arange(n)[:, None, None, None], ch, rows, cols]


def iterate_batches(
    x_uint8: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    rng: np.random.Generator | None,
    mean,
    std,
    pad_to: int | None = None,
    augmentation: Augmentation | None = None,
    dtype=np.float32,
    drop_last: bool = False,
    start_batch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield normalised ``(x, y)`` batches.

    Parameters
    ----------
    x_uint8 : ndarray, uint8, shape (N, C, H, W)
    y : ndarray, int, shape (N,)
    rng : numpy Generator or None
        Shuffles the order and draws the augmentation. ``None``: file order, and
        ``augmentation`` must be ``None`` (evaluation).
    mean, std : sequence of float
        Per-channel normalisation on the [0, 1] scale.
    pad_to : int, optional
        Zero-pad images centrally to ``pad_to`` × ``pad_to`` first.
    start_batch : int
        Skip this many batches (resume); the remaining batches are those an uninterrupted
        epoch with the same ``rng`` state yields.
    """
    if x_uint8.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {x_uint8.shape}")
    if len(x_uint8) != len(y):
        raise ValueError(f"{len(x_uint8)} images but {len(y)} labels")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(y)
    aug = augmentation if augmentation is not None else Augmentation()
    if rng is None:
        if aug != Augmentation():
            raise ValueError("augmentation needs an rng")
        order = np.arange(n)
    else:
        order = rng.permutation(n)
    oy = ox = flips = None
    if aug.crop_padding and rng is not None:
        oy = rng.integers(0, 2 * aug.crop_padding + 1, size=n)
        ox = rng.integers(0, 2 * aug.crop_padding + 1, size=n)
    if aug.horizontal_flip and rng is not None:
        flips = rng.random(n) < 0.5
    mean = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1)
    inv_std = 1.0 / np.asarray(std, dtype=np.float64).reshape(1, -1, 1, 1)
    if mean.shape[1] != x_uint8.shape[1] or inv_std.shape[1] != x_uint8.shape[1]:
        raise ValueError(
            f"mean/std have {mean.shape[1]}/{inv_std.shape[1]} channels, images "
            f"have {x_uint8.shape[1]}"
        )
    for b in range(start_batch, num_batches(n, batch_size, drop_last)):
        sl = slice(b * batch_size, min((b + 1) * batch_size, n))
        idx = order[sl]
        xb = x_uint8[idx].astype(np.float64) / 255.0
        if pad_to is not None:
            xb = _zero_pad(xb, pad_to)
        if oy is not None:
            xb = _crop(xb, aug.crop_padding, oy[sl], ox[sl])
        if flips is not None:
            f = flips[sl]
            xb[f] = xb[f][..., ::-1]
        xb = (xb - mean) * inv_std
        yield xb.astype(dtype, copy=False), np.asarray(y[idx], dtype=np.int64)
