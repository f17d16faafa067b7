"""The scripts in examples/ run as a new user runs them: a fresh process, the fast settings,
a folder outside the repository as the working directory, data from $ANALOGEBL_DATA. Each
test checks what the script prints and writes, not only its exit status."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from analogebl.hardware import load_profile
from analogebl.reporting import load_runs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, args: list[str], cwd: Path, data_dir: str | None, timeout=300):
    """``python examples/NAME ARGS`` in ``cwd`` with the fast settings (the environment
    variable; ``--fast`` is the same switch)."""
    env = dict(os.environ, ANALOGEBL_EXAMPLES_FAST="1")
    env.pop("ANALOGEBL_DATA", None)
    if data_dir is not None:
        env["ANALOGEBL_DATA"] = os.path.abspath(data_dir)
    # the installed package is what the scripts import; the checkout on the path as well,
    # for a test run without `pip install` (it is the same code)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"no match for {pattern!r} in:\n{text}"
    return float(m.group(1))


def test_five_minute_tour(data_dir, tmp_path):
    proc = run_example("five_minute_tour.py", [], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the reference backend in float64: C-EP's estimate points along the exact gradient
    assert number(r"cosine\(C-EP, implicit\) = ([0-9.]+)", out) > 0.9
    for rule in ("P-EP", "N-EP", "C-EP"):
        assert number(rf"{rule}\s+cosine ([0-9.]+)", out) > 0.9
    # trained on real MNIST: far below chance (90 %)
    before = number(r"before training: test error\s+([0-9.]+)%", out)
    final = number(r"final test error: ([0-9.]+)%", out)
    assert final < 50.0 < before, (before, final)
    # the hardware section: a profile's fields, and errors for both ways onto the devices
    assert "only_device_spread" in out and "variability.dtod_bounds_std = 0.15" in out
    m = re.search(r"programmed once ([0-9.]+)%, trained on the devices ([0-9.]+)%", out)
    assert m, out
    assert all(0.0 <= float(v) <= 100.0 for v in m.groups())
    assert float(m.group(2)) < 50.0
    # the tour writes nothing
    assert list(tmp_path.iterdir()) == []


def test_tour_without_data_is_a_message(tmp_path):
    proc = run_example("five_minute_tour.py", ["--fast"], tmp_path, None)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ANALOGEBL_DATA is not set"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_custom_profile_two_rules(data_dir, tmp_path):
    proc = run_example("custom_profile_two_rules.py", ["--fast"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    folder = tmp_path / "analogebl_examples" / "custom_profile"  # the default --out
    # the profile the script wrote is a valid profile file with the effects it describes
    profile = load_profile(str(folder / "my_reram.toml"))
    assert profile.name == "my_reram" and not profile.is_ideal
    assert profile["update.n_states"] == 64 and profile["adc.bits"] == 8
    assert "update.n_states = 64" in out
    # the table: one row per epoch, a test error in % for each of the two rules
    header = re.search(r"^epoch\s+C-EP\s+P-EP$", out, re.M)
    assert header, out
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)$", out[header.end() :], re.M)
    assert [int(r[0]) for r in rows] == [1, 2], out
    for _, *errors in rows:
        assert all(0.0 <= float(e) <= 100.0 for e in errors)
    assert max(float(e) for e in rows[-1][1:]) < 60.0  # both rules learn on the devices
    # the plot: a real PNG with a drawn figure
    png = folder / "comparison.png"
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert np.std(image[..., :3]) > 0.01  # not a blank canvas
    assert sorted(p.name for p in folder.iterdir()) == ["comparison.png", "my_reram.toml"]


def parse_table(out: str) -> dict[str, list[str]]:
    """run id -> the cells of its row in read_study_results.py's table."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("run "))
    assert set(lines[i + 1].replace(" ", "")) == {"-"}
    rows = {}
    for line in lines[i + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_read_study_results(data_dir, tmp_path):
    proc = run_example("read_study_results.py", ["--out", "results"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "results").glob("*.h5"))
    ids = ["c_ep_seed0", "c_ep_seed1", "p_ep_seed0", "p_ep_seed1"]
    assert [f.stem for f in files] == ids
    rows = parse_table(proc.stdout)
    assert sorted(rows) == ids  # one row per run file
    header = proc.stdout.splitlines()
    cols = next(line for line in header if line.startswith("run ")).split()
    col = cols.index("test")  # "test error" is two words: its cells are the one column
    recorded = {r.meta["run_id"]: r for r in load_runs(tmp_path / "results")}
    for run_id, cells in rows.items():
        error = float(cells[col].rstrip("%"))
        assert math.isfinite(error) and 0.0 <= error <= 100.0
        # the same number the package's own reader finds in the file
        assert error == pytest.approx(100 * recorded[run_id].metrics["test_error"][-1], abs=0.01)
        assert cells[1] == run_id.split("_seed")[0] and cells[4] == "1/1"
        assert cells[-1] == "complete"
    assert re.search(r"c_ep\s+none\s+[0-9.]+% ± [0-9.]+\s+\(2 seeds\)", proc.stdout)

    # given the folder, it only reads: the same table, nothing trained or written
    with h5py.File(files[0], "r") as f:
        assert "meta" in f and "metrics" in f
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").iterdir()}
    again = run_example("read_study_results.py", ["results"], tmp_path, None)
    assert again.returncode == 0, again.stderr
    assert parse_table(again.stdout) == rows
    assert "running study" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "results").iterdir()} == before
