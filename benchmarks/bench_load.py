"""Throughput alone and beside CPU-bound processes: does the simulator keep its share?

    python benchmarks/bench_load.py                      # the three cases below, 1 busy process
    python benchmarks/bench_load.py --case relax --busy 1 --threads auto --json

Each case runs in a fresh process twice: alone, then beside ``--busy`` processes that spin
(``while True: pass``) from before it starts to after it ends. The ratio loaded / alone is
what a user of a shared 2-core machine gets; a fair share with one competitor is 0.5 (the
competitor takes one core), and more is possible when the work does not use both cores well.

Cases:

* ``relax``: ``dhn_mnist`` relaxation, batch 128, 60 iterations, numba (samples/s);
* ``dchn``: one C-EP training step of the width-0.25 DCHN, batch 32, ``--backend auto``
  (samples/s);
* ``study``: the first epoch of the README's default study (``mnist_dhn_c_ep``, cpu tier,
  full MNIST; training images per second of epoch time, from the run file).

Time it on an otherwise idle machine: the "alone" number is only as good as the quiet.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = [sys.executable, str(ROOT / "benchmarks" / "bench_step.py"), "--json"]
CASES = {
    "relax": STEP
    + [
        "--circuit",
        "dhn_mnist",
        "--batch",
        "128",
        "--phase",
        "relax",
        "--backend",
        "numba",
        "--steps",
        "30",
    ],
    "dchn": STEP
    + [
        "--circuit",
        "dchn32",
        "--width",
        "0.25",
        "--batch",
        "32",
        "--rule",
        "c_ep",
        "--backend",
        "auto",
        "--steps",
        "3",
    ],
}


def _step_rate(cmd: list[str]) -> tuple[float, int]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["samples_per_s"], res["threads"]


def _study_rate(threads: str) -> tuple[float, int]:
    from analogebl.recording import read_run

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "analogebl.cli",
                "study",
                "run",
                "mnist_dhn_c_ep",
                "--tier",
                "cpu",
                "--epochs",
                "1",
                "--threads",
                threads,
                "--out",
                tmp,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        (path,) = Path(tmp).glob("*.h5")
        rec = read_run(path, checkpoint=False)
        seconds = float(rec.metrics["seconds"][0])
        n = int(rec.meta["train_size"])
        used = int(rec.meta["threads"])
    return n / seconds, used


def measure(case: str, busy: int, threads: str) -> dict:
    """``case``'s rate alone and beside ``busy`` spinning processes."""

    def rate():
        if case == "study":
            return _study_rate(threads)
        return _step_rate(CASES[case] + ["--threads", threads])

    alone, t_alone = rate()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5)
        loaded, t_loaded = rate()
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return {
        "case": case,
        "busy": busy,
        "alone": alone,
        "loaded": loaded,
        "ratio": loaded / alone,
        "threads_alone": t_alone,
        "threads_loaded": t_loaded,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=(*CASES, "study", "all"), default="all")
    p.add_argument("--busy", type=int, default=1, help="competing CPU-bound processes")
    p.add_argument("--threads", default="auto", help="N or auto (as --threads of a study)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    cases = [*CASES, "study"] if a.case == "all" else [a.case]
    for case in cases:
        res = measure(case, a.busy, a.threads)
        if a.json:
            print(json.dumps(res), flush=True)
        else:
            unit = "images/s" if case == "study" else "samples/s"
            print(
                f"{case:6s} alone {res['alone']:9.1f} {unit} ({res['threads_alone']} threads)"
                f"  beside {a.busy} busy: {res['loaded']:9.1f} ({res['threads_loaded']} "
                f"threads)  ratio {res['ratio']:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
