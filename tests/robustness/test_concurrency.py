"""Two runs into one ``--out`` never crash or lose results: the output folder's lock lets one
in and refuses the other at once (exit 2, one line naming the lock file and its holder),
a killed holder leaves no stale lock, and a starting run never deletes a live process's
temp files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analogebl.errors import ConfigError
from analogebl.recording import read_run
from analogebl.recording.atomic import is_temp_file
from analogebl.study.runner import LOCK_FILE, OWNER_FILE, lock_out
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

STUDY = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 128\ntest_subset = 64\nbatch_size = 32\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n[optimizer]\nlr = 0.1\n'
)
REPO = Path(__file__).resolve().parents[2]


def _env(data_dir: str) -> dict[str, str]:
    return {**os.environ, "ANALOGEBL_DATA": data_dir, "OMP_NUM_THREADS": "1",
            "ANALOGEBL_THREADS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if is_temp_file(p) or p.name.endswith(".h5.tmp")]


def test_two_processes_into_one_out(tmp_path, data_dir):
    """Started together: both end with exit 0 (one after the other, the second finding the
    run complete) or one is refused with exit 2 and the other's files are complete."""
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "analogebl.cli", "study", "run", str(study), "--out", str(out),
           "--json"]  # fmt: skip
    procs = [
        subprocess.Popen(
            cmd,
            env=_env(data_dir),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for rc, _, err in results:
        assert "Traceback" not in err, err
        assert rc in (0, 2), (rc, err)
        if rc == 2:
            lines = [e for e in err.strip().splitlines() if e.startswith("analogebl: error: ")]
            assert len(lines) == 1, err
            assert "in use by another run" in lines[0] and LOCK_FILE in lines[0], lines[0]
            assert "pid " in lines[0], lines[0]
    assert any(rc == 0 for rc, _, _ in results), results
    run = read_run(out / "run.h5")
    assert run.complete and run.epochs_done == 1 and len(run.metrics["test_error"]) == 1
    assert (out / "study.toml").read_text().startswith("#")
    assert not _temps(out) and not (out / OWNER_FILE).exists()


HOLDER = """
import sys
from analogebl.study.runner import lock_out
with lock_out(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture()
def holder(tmp_path):
    """A process holding the lock of ``tmp_path/out`` (killed with SIGKILL at the end)."""
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={**os.environ,
                         "PYTHONPATH": str(REPO)})  # fmt: skip
    assert p.stdout.readline().strip() == "locked"
    yield p, out
    p.kill()
    p.wait()


def test_a_held_folder_is_refused_and_left_untouched(holder, tmp_path, data_dir, capsys):
    proc, out = holder
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    live_temp = out / ".run.h5.0123abcd.tmp"  # the holder's write in progress
    live_temp.write_bytes(b"half a run file")
    before = snapshot(tmp_path)
    res = run_cli(["study", "run", str(study), "--out", str(out)], capsys)
    words = ["in use by another run", LOCK_FILE, f"pid {proc.pid}", "--out"]
    assert_clean_refusal(res, words, before, snapshot(tmp_path), out, tmp_path)
    assert live_temp.read_bytes() == b"half a run file"
    assert not (out / "study.toml").exists() and not (out / "run.h5").exists()
    # the holder is killed: the operating system drops its lock, none is left stale
    proc.kill()
    proc.wait()
    res = run_cli(["study", "run", str(study), "--out", str(out), "--json"], capsys)
    assert res.rc == 0, res.err
    assert read_run(out / "run.h5").complete
    assert not _temps(out)  # under the lock, the dead writer's temp file was cleared


def test_stale_temp_files_cleared_only_for_the_folders_own_files(tmp_path, data_dir, capsys):
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    out.mkdir()
    stale = [".run.h5.0123abcd.tmp", ".other.h5.89abcdef.tmp", ".study.toml.00000000.tmp",
             "run.h5.tmp"]  # fmt: skip
    kept = [".notes.txt.0123abcd.tmp", "mine.tmp", ".x.tmp"]
    for name in stale + kept:
        (out / name).write_text("x")
    res = run_cli(["study", "run", str(study), "--out", str(out), "--json"], capsys)
    assert res.rc == 0, res.err
    assert not any((out / n).exists() for n in stale)
    assert all((out / n).read_text() == "x" for n in kept)


def test_another_thread_is_refused(tmp_path):
    """The lock is re-entrant in the thread that holds it (the CLI may hold it across the
    run and its report), exclusive for every other thread and process."""
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def other():
        try:
            with lock_out(out):
                pass
        except ConfigError as exc:
            errors.append(exc)

    with lock_out(out):
        with lock_out(out):
            assert (out / OWNER_FILE).read_text().startswith(f"pid {os.getpid()} ")
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert (out / OWNER_FILE).exists()
    assert len(errors) == 1 and "in use by another run" in str(errors[0])
    assert not (out / OWNER_FILE).exists()
    with lock_out(out):  # released: free again
        pass


def test_an_unwritable_folder_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write to the output folder"):
        with lock_out(blocker / "out"):
            pass
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="cannot write to the output folder"):
            with lock_out(ro):
                pass
