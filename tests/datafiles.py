"""Official-format dataset files written by the tests (CIFAR-100 binary, SVHN .mat), for the
two datasets that ../shared/data does not hold."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.io import savemat


def write_cifar100(root: Path, n: int, rng: np.random.Generator) -> dict:
    """``root/cifar100/cifar-100-binary/{train,test}.bin``: records of coarse label, fine
    label and 3x1024 R, G, B bytes, as the official archive has them."""
    d = root / "cifar100" / "cifar-100-binary"
    d.mkdir(parents=True)
    out = {}
    for split, k in (("train", n), ("test", n // 2)):
        fine = rng.integers(0, 100, size=k).astype(np.uint8)
        coarse = (fine // 5).astype(np.uint8)
        img = rng.integers(0, 256, size=(k, 3, 32, 32), dtype=np.uint8)
        rec = np.concatenate([coarse[:, None], fine[:, None], img.reshape(k, -1)], axis=1)
        rec.tofile(d / f"{split}.bin")
        out[split] = (img, coarse, fine)
    return out


def write_svhn(root: Path, sizes: dict[str, int], rng: np.random.Generator) -> dict:
    """``root/svhn/{train,test}_32x32.mat`` with ``X`` (H, W, C, N) uint8 and ``y`` in 1..10
    (10 = digit 0), as the official cropped-digit files."""
    d = root / "svhn"
    d.mkdir(parents=True)
    truth = {}
    for split, n in sizes.items():
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
        y[0] = 10
        savemat(d / f"{split}_32x32.mat", {"X": X, "y": y})
        truth[split] = (X, y.ravel())
    return truth


def full_data_root(real_root: str | os.PathLike, dest: Path) -> Path:
    """A data folder with the real MNIST, Fashion-MNIST and CIFAR-10 (symlinked) and
    official-format CIFAR-100 and SVHN files written here (random images: for plumbing, not
    accuracy)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(real_root):
        src = Path(real_root) / name
        if src.is_dir() and not (dest / name).exists():
            (dest / name).symlink_to(src.resolve())
    rng = np.random.default_rng(0)
    if not (dest / "cifar100").exists():
        write_cifar100(dest, 200, rng)
    if not (dest / "svhn").exists():
        write_svhn(dest, {"train": 200, "test": 100}, rng)
    return dest
