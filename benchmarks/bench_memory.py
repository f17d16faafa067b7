"""Peak memory of one gradient estimate, EP vs TBP, as the number of iterations grows.

    python benchmarks/bench_memory.py [--circuit dchn32 --width 0.25 --batch 32 --backend numba]

EP (C-EP here) keeps only the current state of each phase, so its peak memory is flat in the
number of nudged iterations; TBP stores every half-step of the unrolled relaxation for the
reverse pass, so its peak grows linearly. Peak = tracemalloc's peak of NumPy allocations
during the estimate (NumPy reports its buffers to tracemalloc), measured per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analogebl.backends import make_backend  # noqa: E402
from analogebl.circuit import load_circuit  # noqa: E402
from analogebl.learning import make_rule  # noqa: E402
from analogebl.learning.estimators import estimate  # noqa: E402
from analogebl.plan import build_plan  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--circuit", default="dchn32")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument(
        "--backend",
        default="numba",
        choices=("numba", "reference"),
        help="a NumPy-based backend (tracemalloc sees NumPy buffers)",
    )
    p.add_argument("--iterations", default="15,60,150")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    circuit = load_circuit(a.circuit, width=a.width)
    if len(circuit.layers[0].shape) == 3:
        circuit = load_circuit(a.circuit, width=a.width, in_channels=3)
    plan = build_plan(circuit, 0)
    b = make_backend(a.backend, plan, "float32")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.batch, *plan.layer_shapes[0])).astype(np.float32)
    t = b.one_hot(rng.integers(0, plan.layer_shapes[-1][0], size=a.batch))
    free = b.relax(b.zero_state(x), 30)
    rows = []
    for rule_name in ("c_ep", "tbp"):
        for it in (int(v) for v in a.iterations.split(",")):
            rule = make_rule(rule_name, 0.25, it)
            estimate(b, rule, free, t)  # warm-up: JIT, scratch buffers
            tracemalloc.start()
            estimate(b, rule, free, t)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append({"rule": rule_name, "iterations": it, "peak_mb": peak / 2**20})
    if a.json:
        print(
            json.dumps(
                {
                    "circuit": a.circuit,
                    "width": a.width,
                    "batch": a.batch,
                    "backend": a.backend,
                    "rows": rows,
                }
            )
        )
    else:
        for r in rows:
            print(f"{r['rule']:5s} iterations {r['iterations']:4d}: peak {r['peak_mb']:8.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
