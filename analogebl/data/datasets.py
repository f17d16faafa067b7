"""The five datasets: where their files live under ``$ANALOGEBL_DATA``, how to read them, and
the reference's normalisation constants (``ebl_algorithms.md`` §4.3).

Layout under the data root (official names, as extracted from the official archives)::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    fashion-mnist/ (same four names)
    cifar10/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin
    cifar100/cifar-100-binary/{train,test}.bin
    svhn/{train,test}_32x32.mat

Every dataset read records which files it came from (:attr:`Dataset.files`: each file's path
under the data root, size and MD5), so that a run can refuse to resume on other data.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from analogebl.data.formats import (
    read_cifar_binary,
    read_idx_images,
    read_idx_labels,
    read_svhn_mat,
)
from analogebl.errors import DataError

__all__ = [
    "DATASETS",
    "Dataset",
    "DataFile",
    "data_root",
    "load_dataset",
    "split_validation",
    "verify_checksums",
]

DATASETS = ("mnist", "fmnist", "svhn", "cifar10", "cifar100")


@dataclass(frozen=True)
class DataFile:
    """A file a dataset was read from: its path relative to the data root (``name``, with
    ``/``), its size in bytes and the MD5 of its contents."""

    name: str
    size: int
    md5: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory: uint8 images (N, C, H, W), int64 labels, normalisation.

    ``mean`` and ``std`` are per channel, on the [0, 1] scale (pixel / 255); ``files`` the
    files both splits were read from (empty for a dataset built in memory).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files: tuple[DataFile, ...] = ()

    def fingerprint(self) -> dict[str, list]:
        """``{file name: [size, md5]}`` of :attr:`files` (what a run file records)."""
        return {f.name: [f.size, f.md5] for f in self.files}

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])


@dataclass(frozen=True)
class _Spec:
    folder: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hint: str
    read: Callable[[Path, str, str, str], tuple[np.ndarray, np.ndarray]]  # dir, split, mode, hint
    files: Callable[[str], tuple[str, ...]]  # split -> the file names read() opens


def _idx_files(split: str) -> tuple[str, ...]:
    stem = "train" if split == "train" else "t10k"
    return (f"{stem}-images-idx3-ubyte.gz", f"{stem}-labels-idx1-ubyte.gz")


def _cifar10_files(split: str) -> tuple[str, ...]:
    if split == "train":
        return tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    return ("test_batch.bin",)


def _cifar100_files(split: str) -> tuple[str, ...]:
    return (f"{split}.bin",)


def _svhn_files(split: str) -> tuple[str, ...]:
    return (f"{split}_32x32.mat",)


def _read_idx(d: Path, split: str, mode: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _idx_files(split)
    x = read_idx_images(d / images, hint, size=(28, 28))  # MNIST and Fashion-MNIST
    y = read_idx_labels(d / labels, 10, hint, count=len(x))  # names the labels file
    return x, y


def _read_cifar10(d: Path, split: str, mode: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_binary(d / n, 1, 0, 10, hint) for n in _cifar10_files(split)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_cifar100(d: Path, split: str, mode: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    fine = mode == "fine"
    (name,) = _cifar100_files(split)
    return read_cifar_binary(d / name, 2, 1 if fine else 0, 100 if fine else 20, hint)


def _read_svhn(d: Path, split: str, mode: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    (name,) = _svhn_files(split)
    return read_svhn_mat(d / name, hint)


_SPECS = {
    "mnist": _Spec(
        "mnist",
        10,
        (0.1307,),
        (0.3081,),
        "get the four MNIST idx .gz files from http://yann.lecun.com/exdb/mnist/ (mirror: "
        "https://ossci-datasets.s3.amazonaws.com/mnist/) into <data>/mnist/",
        _read_idx,
        _idx_files,
    ),
    "fmnist": _Spec(
        "fashion-mnist",
        10,
        (0.2860,),
        (0.3530,),
        "get the four Fashion-MNIST idx .gz files from "
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ into <data>/fashion-mnist/",
        _read_idx,
        _idx_files,
    ),
    "svhn": _Spec(
        "svhn",
        10,
        (0.4377, 0.4438, 0.4728),
        (0.1980, 0.2010, 0.1970),
        "get train_32x32.mat (MD5 e26dedcc434d2e4c54c9b2d4a06d8373) and test_32x32.mat "
        "(MD5 eb5a983be6a315427106f1b164d9cef3) from http://ufldl.stanford.edu/housenumbers/ "
        "into <data>/svhn/",
        _read_svhn,
        _svhn_files,
    ),
    "cifar10": _Spec(
        "cifar10/cifar-10-batches-bin",
        10,
        (0.4914, 0.4822, 0.4465),
        # the reference divides CIFAR-10 inputs by an extra factor 3 (std x 3)
        (3 * 0.2023, 3 * 0.1994, 3 * 0.2010),
        "download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (MD5 "
        "c32a1d4ab5d03f1284b67883e8d87530) and extract it into <data>/cifar10/",
        _read_cifar10,
        _cifar10_files,
    ),
    "cifar100": _Spec(
        "cifar100/cifar-100-binary",
        100,
        (0.5071, 0.4867, 0.4408),
        (0.2675, 0.2565, 0.2761),
        "download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz (MD5 "
        "03b5dce01913d631647c71ecec9e9cb8) and extract it into <data>/cifar100/",
        _read_cifar100,
        _cifar100_files,
    ),
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset folder: ``root`` if given, else ``$ANALOGEBL_DATA``."""
    if root is None:
        root = os.environ.get("ANALOGEBL_DATA")
        if not root:
            raise DataError(
                "ANALOGEBL_DATA is not set: point it at the folder that holds the "
                "datasets (e.g. ANALOGEBL_DATA=../shared/data)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: data folder does not exist (ANALOGEBL_DATA or --root)")
    return path.resolve()


@functools.lru_cache(maxsize=8)
def _load_raw(name: str, root: Path, label_mode: str):
    spec = _SPECS[name]
    d = root / spec.folder
    hint = spec.hint.replace("<data>", str(root))
    train = spec.read(d, "train", label_mode, hint)
    test = spec.read(d, "test", label_mode, hint)
    for arr in (*train, *test):
        arr.setflags(write=False)
    names = [f"{spec.folder}/{n}" for split in ("train", "test") for n in spec.files(split)]
    return train, test, tuple(_data_file(root, n) for n in names)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _data_file(root: Path, name: str) -> DataFile:
    """Size and MD5 of the data file ``root/name`` (just read, so it exists)."""
    path = root / name
    return DataFile(name, path.stat().st_size, _md5(path))


def _subset(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray | None:
    if k is None or k >= n:
        return None
    if k <= 0:
        raise DataError(f"subset size must be positive, got {k}")
    return np.sort(rng.choice(n, size=k, replace=False))


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    label_mode: str = "fine",
) -> Dataset:
    """Load a dataset from the data root, optionally a seeded random subset of each split.

    Parameters
    ----------
    name : {"mnist", "fmnist", "svhn", "cifar10", "cifar100"}
    root : path, optional
        Defaults to ``$ANALOGEBL_DATA``.
    train_subset, test_subset : int, optional
        Keep this many samples, drawn without replacement with ``subset_seed`` and kept in
        file order. ``None`` keeps the whole split.
    label_mode : {"fine", "coarse"}
        CIFAR-100 only: 100 fine or 20 coarse classes.
    """
    if name not in _SPECS:
        raise DataError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    if label_mode not in ("fine", "coarse"):
        raise DataError(f"label_mode must be 'fine' or 'coarse', got '{label_mode}'")
    (trx, try_), (tex, tey), files = _load_raw(name, data_root(root), label_mode)
    train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(subset_seed).spawn(2)
    )
    i = _subset(len(try_), train_subset, train_rng)
    j = _subset(len(tey), test_subset, test_rng)
    if i is not None:
        trx, try_ = trx[i], try_[i]
    if j is not None:
        tex, tey = tex[j], tey[j]
    spec = _SPECS[name]
    num_classes = 20 if (name == "cifar100" and label_mode == "coarse") else spec.num_classes
    return Dataset(name, trx, try_, tex, tey, num_classes, spec.mean, spec.std, files)


def split_validation(
    ds: Dataset, n: int, rng: np.random.Generator
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Hold out ``n`` random training images as a validation split (disjoint from training).

    Returns the dataset with the remaining training images (file order kept) and the
    validation images and labels. Model selection reads the validation split, never test.
    """
    total = len(ds.train_y)
    if not 0 < n < total:
        raise DataError(
            f"validation_subset must be between 1 and {total - 1} "
            f"(the training split holds {total}), got {n}"
        )
    val = np.sort(rng.choice(total, size=n, replace=False))
    keep = np.setdiff1d(np.arange(total), val)
    train = dataclasses.replace(ds, train_x=ds.train_x[keep], train_y=ds.train_y[keep])
    return train, ds.train_x[val], ds.train_y[val]


def _checksum_entries(sums: Path) -> list[tuple[str, str]]:
    """The ``(md5, relative path)`` entries of the checksum list ``sums``, every line checked
    before any file is read: UTF-8 text, ``<32 hex digits>  <path>``, and a path that stays
    inside the data folder (relative, no ``..`` part, no NUL)."""
    try:
        raw = sums.read_bytes()
    except OSError as exc:
        raise DataError(f"{sums}: cannot read ({exc.strerror or exc})") from None
    entries = []
    for lineno, line_bytes in enumerate(raw.splitlines(), 1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{sums}: line {lineno} is not UTF-8 text") from None
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        rel = parts[1].strip().removeprefix("*") if len(parts) == 2 else ""
        digest = parts[0].lower()
        if len(digest) != 32 or not all(c in "0123456789abcdef" for c in digest) or not rel:
            raise DataError(f"{sums}: line {lineno} is not '<md5>  <path>'")
        posix = PurePosixPath(rel)
        if "\x00" in rel or posix.is_absolute() or ".." in posix.parts:
            raise DataError(
                f"{sums}: line {lineno}: {rel!r} is not a path inside the data folder "
                "(absolute paths and '..' are refused)"
            )
        entries.append((digest, rel))
    return entries


def verify_checksums(root: str | os.PathLike | None = None) -> Iterator[tuple[str, bool]]:
    """Check every file listed in ``<root>/MD5SUMS``; yields ``(relative path, matches)``.

    The whole list is checked before the first file is read, so a malformed line (not
    UTF-8, not ``<md5>  <path>``, or a path that leaves the data folder: absolute or with a
    ``..`` part) raises :class:`~analogebl.errors.DataError` naming ``MD5SUMS`` and the line
    before anything is yielded. A listed path that is missing or not a regular file does
    not match.

    This checks a user's own list only; ``analogebl data check`` checks the official
    checksums shipped with the package (``analogebl.data.checksums.check_datasets``) and a
    root's ``MD5SUMS`` in addition.
    """
    root = data_root(root)
    sums = root / "MD5SUMS"
    if not sums.is_file():
        raise DataError(f"{sums}: checksum list not found")
    for digest, rel in _checksum_entries(sums):
        path = root / rel
        if not path.is_file():
            yield rel, False
            continue
        try:
            actual = _md5(path)
        except OSError as exc:
            why = exc.strerror or exc
            raise DataError(f"{path}: cannot read ({why}); listed in {sums}") from None
        yield rel, actual == digest
