"""Readers of the official dataset file formats, each validating what it reads.

Every reader returns ``(images, labels)`` with images ``uint8`` in (N, C, H, W) layout and
labels ``int64``. A missing, truncated or corrupted file raises :class:`DataError` naming the
file and saying what to do. Nothing is ever unpickled: CIFAR is read from the official
*binary* release and SVHN from MATLAB v5 files through :func:`scipy.io.loadmat`.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from analogebl.errors import DataError

__all__ = ["read_cifar_binary", "read_idx_images", "read_idx_labels", "read_svhn_mat"]

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_CIFAR_IMAGE_BYTES = 3 * 32 * 32


def _corrupt(path: Path, what: str, hint: str) -> DataError:
    return DataError(f"{path}: {what}; {hint}")


def _read_gzip(path: Path, hint: str) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found; {hint}")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, f"not a readable gzip file ({exc})", hint) from None


def _idx(path: Path, magic: int, ndim: int, hint: str) -> np.ndarray:
    raw = _read_gzip(path, hint)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, f"only {len(raw)} bytes, shorter than the idx header", hint)
    got_magic, *dims = struct.unpack(f">{1 + ndim}i", raw[:header])
    if got_magic != magic:
        raise _corrupt(path, f"idx magic number {got_magic}, expected {magic}", hint)
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise _corrupt(
            path,
            f"{len(raw)} bytes, the header {tuple(dims)} says {expected} (truncated or corrupted)",
            hint,
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path: str | Path, hint: str = "") -> np.ndarray:
    """Read an idx3 gzip image file (MNIST format) as uint8 (N, 1, H, W)."""
    x = _idx(Path(path), _IDX_IMAGES_MAGIC, 3, hint)
    return x[:, None, :, :].copy()


def read_idx_labels(path: str | Path, num_classes: int, hint: str = "") -> np.ndarray:
    """Read an idx1 gzip label file as int64 (N,), checking every label is < num_classes."""
    path = Path(path)
    y = _idx(path, _IDX_LABELS_MAGIC, 1, hint).astype(np.int64)
    if y.size and y.max() >= num_classes:
        raise _corrupt(path, f"label {int(y.max())} out of range 0..{num_classes - 1}", hint)
    return y


def read_cifar_binary(
    path: str | Path, label_bytes: int, label_index: int, num_classes: int, hint: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Read an official CIFAR binary batch.

    Each record is ``label_bytes`` label bytes followed by 3072 pixel bytes (R, G and B
    planes, 32×32 row-major). CIFAR-10 has one label byte; CIFAR-100 has two (coarse, fine).

    Parameters
    ----------
    label_bytes : int
        1 for CIFAR-10, 2 for CIFAR-100.
    label_index : int
        Which of the label bytes to return (CIFAR-100: 0 coarse, 1 fine).
    num_classes : int
        Labels must lie in 0..num_classes-1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; {hint}")
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + _CIFAR_IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise _corrupt(
            path,
            f"{raw.size} bytes is not a whole number of {record}-byte "
            "records (truncated or corrupted)",
            hint,
        )
    rec = raw.reshape(-1, record)
    y = rec[:, label_index].astype(np.int64)
    if y.max() >= num_classes:
        raise _corrupt(
            path,
            f"label {int(y.max())} out of range 0..{num_classes - 1} "
            "(corrupted, or not the binary version)",
            hint,
        )
    x = rec[:, label_bytes:].reshape(-1, 3, 32, 32).copy()
    return x, y


def read_svhn_mat(path: str | Path, hint: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits ``.mat`` file (``X``: 32×32×3×N, ``y`` in 1..10, 10 = 0)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; {hint}")
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises ValueError/TypeError/... on damaged files
        raise _corrupt(
            path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})", hint
        ) from None
    for key in ("X", "y"):
        if key not in mat:
            raise _corrupt(path, f"no variable '{key}'", hint)
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
        raise _corrupt(
            path,
            f"X has shape {x.shape} and y {y.size} labels, expected 32x32x3xN with N labels",
            hint,
        )
    if y.size and (y.min() < 1 or y.max() > 10):
        raise _corrupt(path, f"labels span {int(y.min())}..{int(y.max())}, expected 1..10", hint)
    y = y.astype(np.int64) % 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y
