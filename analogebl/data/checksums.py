"""The official dataset files, their checksums, and the check behind ``analogebl data check``.

:data:`OFFICIAL_FILES` maps each file's path under the data root to its published MD5 and
size, so that a data folder can be checked without a checksum list of its own. Where the
publisher gives no MD5 of an extracted file, what can be checked without one is checked:

* MNIST, Fashion-MNIST (idx ``.gz``) and CIFAR-10 (binary version, as extracted from
  ``cifar-10-binary.tar.gz``): MD5 and size of every file.
* SVHN (cropped digits, ``train_32x32.mat`` / ``test_32x32.mat``): the MD5s published with
  the files (their sizes are not recorded here).
* CIFAR-100 (binary version): only the MD5 of the archive ``cifar-100-binary.tar.gz`` is
  published, not those of the extracted ``train.bin`` / ``test.bin``. Their size (50,000 and
  10,000 records of 3,074 bytes) and the range of every record's two label bytes are checked
  instead.

:func:`check_datasets` checks a data folder dataset by dataset (ok / BAD / absent), and
then the files of a user checksum list ``MD5SUMS`` in that folder, if there is one, that the
official table does not already cover.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from analogebl.data.datasets import _SPECS, _checksum_entries, _md5, data_root

__all__ = [
    "OFFICIAL_DATASETS",
    "OFFICIAL_FILES",
    "DatasetCheck",
    "FileCheck",
    "OfficialDataset",
    "OfficialFile",
    "check_datasets",
]

#: Bytes per CIFAR-100 binary record: coarse label, fine label, 3 x 32 x 32 pixels.
CIFAR100_RECORD = 2 + 3 * 32 * 32


@dataclass(frozen=True)
class OfficialFile:
    """One file of an official dataset release.

    Parameters
    ----------
    md5 : str or None
        The published MD5 of the file (``None``: none is published for it).
    size : int or None
        Its size in bytes (``None``: not recorded).
    records : int or None
        CIFAR-100 only: the number of records the file holds.
    required : bool
        Whether the dataset reader needs the file (``False``: shipped alongside, checked
        when present).
    """

    md5: str | None
    size: int | None
    records: int | None = None
    required: bool = True


@dataclass(frozen=True)
class OfficialDataset:
    """An official dataset: its name in a study (``dataset = "fmnist"``) and title; where its
    files live under the data root and where to get them come from the dataset readers'
    own table, so the two cannot disagree."""

    name: str
    title: str
    #: what the check can establish, when it is less than the files' MD5s
    limits: str = ""

    @property
    def folder(self) -> str:
        """Its folder under the data root (``/``-separated)."""
        return _SPECS[self.name].folder

    def download(self, root: Path) -> str:
        """Where to get its files and where to put them under ``root``."""
        return _SPECS[self.name].hint.replace("<data>", str(root))


_CIFAR10 = "cifar10/cifar-10-batches-bin"

#: Path under the data root (``/``-separated) -> the official MD5 and size of that file.
OFFICIAL_FILES: dict[str, OfficialFile] = {
    # MNIST (http://yann.lecun.com/exdb/mnist/)
    "mnist/train-images-idx3-ubyte.gz": OfficialFile("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "mnist/train-labels-idx1-ubyte.gz": OfficialFile("d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "mnist/t10k-images-idx3-ubyte.gz": OfficialFile("9fb629c4189551a2d022fa330f9573f3", 1648877),
    "mnist/t10k-labels-idx1-ubyte.gz": OfficialFile("ec29112dd5afa0611ce80d1b7f02629c", 4542),
    # Fashion-MNIST
    "fashion-mnist/train-images-idx3-ubyte.gz": OfficialFile(
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880
    ),
    "fashion-mnist/train-labels-idx1-ubyte.gz": OfficialFile(
        "25c81989df183df01b3e8a0aad5dffbe", 29515
    ),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": OfficialFile(
        "bef4ecab320f06d8554ea6380940ec79", 4422102
    ),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": OfficialFile(
        "bb300cfdad3c16e7a12a480ee83cd310", 5148
    ),
    # CIFAR-10, binary version (extracted from cifar-10-binary.tar.gz)
    f"{_CIFAR10}/data_batch_1.bin": OfficialFile("5dd7e06a14cb22eb9f671a540d1b7c25", 30730000),
    f"{_CIFAR10}/data_batch_2.bin": OfficialFile("5ea93a67294ea407fff1d09f752e9692", 30730000),
    f"{_CIFAR10}/data_batch_3.bin": OfficialFile("942cd6a4bcdd0dd3c604fbe906cb4421", 30730000),
    f"{_CIFAR10}/data_batch_4.bin": OfficialFile("ae636b3ba5c66a11e91e8cb52e771fcb", 30730000),
    f"{_CIFAR10}/data_batch_5.bin": OfficialFile("53f37980c15c3d472c316c40844f3f0d", 30730000),
    f"{_CIFAR10}/test_batch.bin": OfficialFile("803d5f7f4d78ea53de84dbe85f74fb6d", 30730000),
    f"{_CIFAR10}/batches.meta.txt": OfficialFile(
        "728051cd483f366e254dddb25bead8b3", 61, required=False
    ),
    # CIFAR-100, binary version: no MD5 is published for the extracted files
    "cifar100/cifar-100-binary/train.bin": OfficialFile(
        None, 50000 * CIFAR100_RECORD, records=50000
    ),
    "cifar100/cifar-100-binary/test.bin": OfficialFile(
        None, 10000 * CIFAR100_RECORD, records=10000
    ),
    # SVHN cropped digits (MD5s published with the files)
    "svhn/train_32x32.mat": OfficialFile("e26dedcc434d2e4c54c9b2d4a06d8373", None),
    "svhn/test_32x32.mat": OfficialFile("eb5a983be6a315427106f1b164d9cef3", None),
}

#: The datasets a study may name, in the order ``analogebl data check`` reports them.
OFFICIAL_DATASETS: dict[str, OfficialDataset] = {
    d.name: d
    for d in (
        OfficialDataset("mnist", "MNIST"),
        OfficialDataset("fmnist", "Fashion-MNIST"),
        OfficialDataset("cifar10", "CIFAR-10"),
        OfficialDataset(
            "cifar100",
            "CIFAR-100",
            limits="every label in range (there is no published MD5 for the extracted "
            "files, only for the archive cifar-100-binary.tar.gz)",
        ),
        OfficialDataset("svhn", "SVHN"),
    )
}

#: What ``MD5SUMS`` (a user's own checksum list in the data root) is reported as.
USER_LIST = "MD5SUMS"


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one file: ``status`` is ``"ok"`` or ``"BAD"``; ``detail`` says why
    a file is BAD (missing, wrong size, wrong MD5, unreadable)."""

    path: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class DatasetCheck:
    """The outcome for one dataset (or for the user list ``MD5SUMS``).

    ``status`` is ``"ok"`` (every file present and matching), ``"BAD"`` (a file differs
    from the official one or is missing while others are there), or ``"absent"`` (none of
    its files is there); ``files`` holds every file checked and ``summary`` one line of
    explanation: what was checked, or where to get the files.
    """

    name: str
    status: str
    files: tuple[FileCheck, ...]
    summary: str

    @property
    def bad(self) -> tuple[FileCheck, ...]:
        """The files that did not match."""
        return tuple(f for f in self.files if f.status != "ok")


def _files(n: int) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} file{'' if n == 1 else 's'}"


def _why(exc: OSError) -> str:
    return f"cannot read ({exc.strerror or exc})"


def _cifar100_labels(path: Path, records: int) -> str:
    """Empty when every record of the CIFAR-100 binary file ``path`` holds a coarse label
    in 0..19 and a fine label in 0..99, else what is wrong."""
    rec = np.memmap(path, dtype=np.uint8, mode="r", shape=(records, CIFAR100_RECORD))
    try:
        for col, top, what in ((0, 20, "coarse"), (1, 100, "fine")):
            high = int(rec[:, col].max())
            if high >= top:
                first = int(np.argmax(rec[:, col] >= top))
                return f"record {first}: {what} label {high} is outside 0..{top - 1}"
    finally:
        del rec
    return ""


def _check_file(
    root: Path, rel: str, official: OfficialFile, md5: Callable[[Path], str], against="official"
) -> FileCheck:
    """One file against its expected size, MD5 and records (``against``: what the expected
    MD5 is called in a mismatch, ``"official"`` or the user list's ``"listed"``)."""
    path = root / rel
    if not path.is_file():
        return FileCheck(rel, "BAD", "missing" if not path.exists() else "not a regular file")
    try:
        size = path.stat().st_size
        if official.size is not None and size != official.size:
            return FileCheck(rel, "BAD", f"{size:,} bytes, the official file has "
                             f"{official.size:,}")  # fmt: skip
        if official.md5 is not None:
            actual = md5(path)
            if actual != official.md5:
                return FileCheck(rel, "BAD", f"MD5 {actual}, {against} {official.md5}")
        if official.records is not None:
            wrong = _cifar100_labels(path, official.records)
            if wrong:
                return FileCheck(rel, "BAD", wrong)
    except OSError as exc:
        return FileCheck(rel, "BAD", _why(exc))
    return FileCheck(rel, "ok")


def _check_dataset(root: Path, ds: OfficialDataset, md5: Callable[[Path], str]) -> DatasetCheck:
    prefix = ds.folder + "/"
    files = {rel: f for rel, f in OFFICIAL_FILES.items() if rel.startswith(prefix)}
    if not any((root / rel).exists() for rel in files):
        where = f"no {ds.title} file in {ds.folder}/: " + ds.download(root)
        return DatasetCheck(ds.name, "absent", (), where)
    checks = tuple(
        _check_file(root, rel, f, md5)
        for rel, f in files.items()
        if f.required or (root / rel).exists()
    )
    if any(c.status != "ok" for c in checks):
        return DatasetCheck(ds.name, "BAD", checks, ds.download(root))
    one = len(checks) == 1
    files, match, s = _files(len(checks)), "matches" if one else "match", "" if one else "s"
    if ds.limits:
        what = f"{files} of the official size and record count, {ds.limits}"
    elif all(OFFICIAL_FILES[c.path].size is not None for c in checks):
        what = f"{files} {match} the official MD5 checksum{s} and size{s}"
    else:
        what = f"{files} {match} the official MD5 checksum{s}"
    return DatasetCheck(ds.name, "ok", checks, what)


def _check_user_list(
    root: Path, entries: list[tuple[str, str]], md5: Callable[[Path], str]
) -> DatasetCheck:
    """The files of the user list ``MD5SUMS`` that the official table has not already
    checked against the same MD5 (a listed file that is missing is BAD, even when it
    belongs to a dataset that is absent as a whole)."""
    checks, covered = [], 0
    for digest, rel in entries:
        norm = str(PurePosixPath(rel))
        official = OFFICIAL_FILES.get(norm)
        if official is not None and official.md5 == digest and (root / norm).is_file():
            covered += 1  # checked above, against the same MD5
            continue
        checks.append(_check_file(root, rel, OfficialFile(digest, None), md5, "listed"))
    status = "ok" if all(c.status == "ok" for c in checks) else "BAD"
    summary = f"{_files(len(entries))} listed in {root / USER_LIST}"
    if covered == len(entries) == 1:
        summary += ", an official file checked above"
    elif covered and covered == len(entries):
        summary += ", all of them official files checked above"
    elif covered:
        summary += f", {covered} of them official (checked above)"
    return DatasetCheck(USER_LIST, status, tuple(checks), summary)


def check_datasets(root: str | os.PathLike | None = None) -> Iterator[DatasetCheck]:
    """Check the data folder against the official checksums, one dataset at a time.

    Parameters
    ----------
    root : str or path-like, optional
        The data folder (default ``$ANALOGEBL_DATA``).

    Returns
    -------
    iterator of DatasetCheck
        One result per dataset of :data:`OFFICIAL_DATASETS`, in that order, each computed
        as it is taken (the files are read then), and last one named ``MD5SUMS`` when the
        folder holds a checksum list of that name: its entries are checked as well, in
        addition to the official table (an entry that repeats an official file's MD5 is not
        checked twice).

    Raises
    ------
    DataError
        ``root`` is not an existing folder (or not given and ``$ANALOGEBL_DATA`` unset), or
        ``MD5SUMS`` is malformed or unreadable (raised by this call, before any file is
        checked).
    """
    root = data_root(root)
    sums = root / USER_LIST
    entries = _checksum_entries(sums) if sums.exists() else None  # refused before any check
    return _checks(root, entries)


def _checks(root: Path, entries: list[tuple[str, str]] | None) -> Iterator[DatasetCheck]:
    md5 = functools.cache(_md5)  # each file read at most once
    for ds in OFFICIAL_DATASETS.values():
        yield _check_dataset(root, ds, md5)
    if entries is not None:
        yield _check_user_list(root, entries, md5)
