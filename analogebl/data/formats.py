"""Readers of the official dataset file formats, each validating what it reads.

Every reader returns ``(images, labels)`` with images ``uint8`` in (N, C, H, W) layout and
labels ``int64``. A missing, unreadable, truncated, empty or corrupted file (wrong magic
number, a header that does not match the size, zero items, images of the wrong size, labels
out of range, as many labels as images) raises :class:`DataError` naming the file and saying
what to do. Nothing is ever unpickled: CIFAR is read from the official *binary* release and
SVHN from MATLAB v5 files through :func:`scipy.io.loadmat`. A gzip file is decompressed no
further than its header says (a crafted file cannot fill the memory).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from analogebl.errors import DataError

__all__ = ["read_cifar_binary", "read_idx_images", "read_idx_labels", "read_svhn_mat"]

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_CIFAR_IMAGE_BYTES = 3 * 32 * 32


_CHUNK = 1 << 24


def _corrupt(path: Path, what: str, hint: str) -> DataError:
    return DataError(f"{path}: {what}; {hint}" if hint else f"{path}: {what}")


def _check_file(path: Path, hint: str) -> None:
    if not path.exists():
        raise _corrupt(path, "file not found", hint)
    if not path.is_file():
        raise _corrupt(path, "not a regular file (a folder or a special file)", hint)


def _read_exactly(f, n: int) -> bytes:
    """Up to ``n`` bytes from ``f`` (fewer only at the end of the stream), read in chunks
    so a header claiming more than the file holds allocates no more than the file has."""
    parts, left = [], n
    while left > 0:
        part = f.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _idx(path: Path, magic: int, ndim: int, hint: str) -> np.ndarray:
    """An idx gzip file: validated header (magic, item count > 0, dimensions > 0), then
    exactly the bytes the header announces."""
    _check_file(path, hint)
    header = 4 + 4 * ndim
    try:
        with gzip.open(path, "rb") as f:
            head = _read_exactly(f, header)
            if len(head) < header:
                raise _corrupt(
                    path, f"only {len(head)} bytes, shorter than the {header}-byte idx header", hint
                )
            got_magic, *dims = struct.unpack(f">{1 + ndim}i", head)
            if got_magic != magic:
                raise _corrupt(path, f"idx magic number {got_magic}, expected {magic}", hint)
            if dims[0] <= 0:
                raise _corrupt(path, f"the header says {dims[0]} items, expected at least 1", hint)
            if any(d <= 0 for d in dims[1:]):
                raise _corrupt(path, f"the header gives item dimensions {tuple(dims[1:])}", hint)
            size = math.prod(dims)
            body = _read_exactly(f, size)
            extra = len(f.read(1))
    except DataError:  # a header refused above (DataError is an OSError)
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, f"not a readable gzip file ({exc})", hint) from None
    if len(body) != size or extra:
        got = f"{header + len(body)}" + (" or more" if extra else "")
        raise _corrupt(
            path,
            f"{got} bytes, the header {tuple(dims)} says {header + size} (truncated or corrupted)",
            hint,
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _check_size(path: Path, shape: tuple[int, ...], expected: tuple[int, int] | None, hint: str):
    if expected is not None and tuple(shape) != tuple(expected):
        raise _corrupt(
            path,
            f"images are {'x'.join(map(str, shape))} pixels, expected "
            f"{'x'.join(map(str, expected))}",
            hint,
        )


def _check_count(path: Path, n: int, count: int | None, hint: str) -> None:
    if count is not None and n != count:
        raise _corrupt(path, f"{n} items, the matching file holds {count}", hint)


def read_idx_images(
    path: str | Path, hint: str = "", *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Read an idx3 gzip image file (MNIST format) as uint8 (N, 1, H, W).

    Parameters
    ----------
    size : (int, int), optional
        The expected image height and width (MNIST: 28, 28); other sizes are refused.
    """
    path = Path(path)
    x = _idx(path, _IDX_IMAGES_MAGIC, 3, hint)
    _check_size(path, x.shape[1:], size, hint)
    return x[:, None, :, :].copy()


def read_idx_labels(
    path: str | Path, num_classes: int, hint: str = "", *, count: int | None = None
) -> np.ndarray:
    """Read an idx1 gzip label file as int64 (N,), checking every label is < num_classes.

    Parameters
    ----------
    count : int, optional
        The number of images these labels belong to; a different number is refused.
    """
    path = Path(path)
    y = _idx(path, _IDX_LABELS_MAGIC, 1, hint).astype(np.int64)
    _check_count(path, y.size, count, hint)
    if y.max() >= num_classes:
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
    _check_file(path, hint)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise _corrupt(path, f"cannot read ({exc.strerror or exc})", hint) from None
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
    _check_file(path, hint)
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises ValueError/TypeError/... on damaged files
        raise _corrupt(
            path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})", hint
        ) from None
    for key in ("X", "y"):
        if key not in mat:
            raise _corrupt(path, f"no variable '{key}'", hint)
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
        raise _corrupt(
            path,
            f"X has shape {x.shape} and y {y.size} labels, expected 32x32x3xN with N labels",
            hint,
        )
    if y.size == 0:
        raise _corrupt(path, "holds no images (N = 0)", hint)
    if x.dtype != np.uint8:
        raise _corrupt(path, f"X holds {x.dtype} values, expected uint8 pixels", hint)
    if y.dtype.kind not in "iu" and not (
        y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    ):
        raise _corrupt(path, f"y holds {y.dtype} values that are not whole numbers", hint)
    if y.min() < 1 or y.max() > 10:
        raise _corrupt(path, f"labels span {y.min():g}..{y.max():g}, expected 1..10", hint)
    y = y.astype(np.int64) % 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y
