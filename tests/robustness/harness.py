"""The robustness tables' harness: run the CLI in-process on a bad input and check the
refusal is clean.

A clean refusal: exit status 2, exactly one stderr line ``analogebl: error: ...`` that
contains the expected words (the file and the key), nothing written outside ``--out``, and
every file that existed before (inside ``--out`` too) left byte-for-byte untouched.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from analogebl.cli import main


def snapshot(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (folders as ``"dir"``)."""
    out: dict[str, str] = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    rc: int
    err: list[str]
    out_lines: list[str]


def run_cli(argv: list[str], capsys, cwd: Path | None = None) -> Outcome:
    """``analogebl ARGV`` in this process (argparse usage errors included), from ``cwd``."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old)
    cap = capsys.readouterr()
    return Outcome(rc, cap.err.strip().splitlines(), cap.out.strip().splitlines())


def assert_clean_refusal(
    outcome: Outcome,
    words: list[str],
    before: dict[str, str],
    after: dict[str, str],
    out: Path | None = None,
    root: Path | None = None,
) -> None:
    """``outcome`` is a clean refusal; ``before``/``after`` are snapshots of ``root`` (the
    sandbox holding ``--out``). Files may appear only inside ``out``; none may change."""
    assert outcome.rc == 2, (outcome.rc, outcome.err)
    usage = [e for e in outcome.err if not e.startswith("usage:")]
    assert len(usage) == 1, outcome.err
    line = usage[0]
    assert line.startswith("analogebl: error: ") or ": error: " in line, line
    assert "Traceback" not in "\n".join(outcome.err)
    for w in words:
        assert w in line, (w, line)
    for rel, digest in before.items():
        assert after.get(rel) == digest, f"{rel} changed or vanished"
    if root is not None:
        prefix = None if out is None else str(Path(out).resolve().relative_to(root.resolve()))
        for rel in set(after) - set(before):
            inside = prefix is not None and (rel == prefix or rel.startswith(prefix + os.sep))
            assert inside, f"{rel} was written outside --out"
