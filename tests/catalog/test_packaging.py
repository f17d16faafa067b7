"""The wheel carries the catalogs: installed from it (not editable), ``analogebl`` finds its
studies, circuits and hardware profiles with the cwd outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from analogebl import catalog

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("circuits", "studies", "hardware_profiles")


def test_every_subpackage_is_listed_in_pyproject():
    """``[tool.setuptools] packages`` is an explicit list (mapped catalogs): keep it whole."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(d.relative_to(ROOT).parts)
        for d in [ROOT / "analogebl", *(ROOT / "analogebl").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    listed = {p for p in tool["packages"] if not p.startswith("analogebl._catalogs.")}
    assert on_disk == listed, (
        f"pyproject.toml [tool.setuptools] packages: add {sorted(on_disk - listed)}, "
        f"remove {sorted(listed - on_disk)}"
    )
    for kind in KINDS:
        assert tool["package-dir"][f"analogebl._catalogs.{kind}"] == kind
        assert f"analogebl._catalogs.{kind}" in tool["packages"]


def test_search_order(tmp_path, monkeypatch):
    """cwd, then $ANALOGEBL_PATH in order, then the checkout, then the installed catalogs."""
    dirs = {n: tmp_path / n / "circuits" for n in ("cwd", "p1", "p2", "pkg")}
    for d in dirs.values():
        d.mkdir(parents=True)
    (dirs["p2"] / "tiny_dense.toml").write_text("")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv(
        "ANALOGEBL_PATH", os.pathsep.join([str(tmp_path / "p1"), str(tmp_path / "p2")])
    )
    monkeypatch.setattr(catalog, "_PACKAGED", tmp_path / "pkg")
    monkeypatch.setattr(catalog, "_CHECKOUT", ROOT)
    want = [dirs["cwd"], dirs["p1"], dirs["p2"], ROOT / "circuits", dirs["pkg"]]
    assert catalog.catalog_dirs("circuits") == [d.resolve() for d in want]
    assert catalog.find_entry("circuits", "tiny_dense") == dirs["p2"].resolve() / "tiny_dense.toml"
    monkeypatch.setattr(catalog, "_CHECKOUT", None)  # installed from a wheel
    assert catalog.catalog_dirs("circuits")[-1] == dirs["pkg"].resolve()


_PROBE = """
import json, analogebl
from analogebl.catalog import catalog_dirs
from analogebl.circuit import load_circuit
from analogebl.study import load_study
circuit = load_circuit(load_study("mnist_dhn_c_ep")["circuit.name"])
print(json.dumps({"file": analogebl.__file__,
                  "dirs": {k: [str(d) for d in catalog_dirs(k)] for k in %r},
                  "sizes": [layer.size for layer in circuit.layers]}))
"""


@pytest.mark.slow
def test_installed_wheel_finds_the_catalogs(tmp_path):
    pytest.importorskip("setuptools")  # the wheel is built without build isolation
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to the sources
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("analogebl", *KINDS):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)

    pip = ["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, *pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-w", str(wheels), str(src)],
        check=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("analogebl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    version = wheel.name.split("-")[1]
    assert f"analogebl-{version}.dist-info/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"analogebl-{version}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in meta
    for kind in KINDS:
        for f in (ROOT / kind).glob("*.toml"):
            assert f"analogebl/_catalogs/{kind}/{f.name}" in names

    # numpy, torch & co. come from the running environment (also when it is a venv itself,
    # whose site-packages --system-site-packages would not reach); analogebl from the wheel
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    (Path(purelib) / "_outer_env.pth").write_text("\n".join(outer) + "\n")
    # --ignore-installed: pip never touches the (editable) analogebl of the outer environment
    subprocess.run(
        [python, *pip, "install", "--no-deps", "--no-index", "--force-reinstall"]
        + ["--ignore-installed", str(wheel)],
        check=True,
        timeout=120,
    )

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ANALOGEBL_PATH", "PYTHONPATH")}

    def run(*cmd: str | Path) -> str:
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout

    probe = json.loads(run(python, "-c", _PROBE % (KINDS,)))
    installed = Path(probe["file"]).resolve().parent
    assert installed.is_relative_to(env_dir.resolve()), probe["file"]
    for kind in KINDS:  # nothing but the installed package data
        assert probe["dirs"][kind] == [str(installed / "_catalogs" / kind)]
    assert probe["sizes"] == [784, 512, 10]  # circuit dhn_mnist resolved

    studies = run(bindir / "analogebl", "study", "list")
    assert "mnist_dhn_c_ep" in studies
    assert len(studies.splitlines()) == len(list((ROOT / "studies").glob("*.toml")))
    profiles = run(bindir / "analogebl", "profile", "list")
    assert "reram_like" in profiles and "ideal_fp32" in profiles
    assert run(python, "-m", "analogebl", "--version").strip() == f"analogebl {version}"

    # the five-minute tour, run from outside the repository on the installed package only
    tour = ROOT / "examples" / "five_minute_tour.py"
    data = os.environ.get("ANALOGEBL_DATA")
    if data and (Path(data) / "mnist").is_dir():
        env["ANALOGEBL_DATA"] = str(Path(data).resolve())
        out = run(python, "-P", tour, "--fast")  # -P: the script's folder is not on sys.path
        assert "cosine(C-EP, implicit) = 0.99" in out and "final test error" in out
    shown = tomllib.loads(run(bindir / "analogebl", "study", "show", "mnist_dhn_c_ep"))
    assert shown["circuit"]["name"] == "dhn_mnist"
