"""Accuracy and cost of the IR-drop solvers (analogebl.hardware.parasitics).

    python benchmarks/bench_ir_drop.py            # 128 x 128 and 512 x 512 tiles
    python benchmarks/bench_ir_drop.py --quick    # 32 x 32 only
    python benchmarks/bench_ir_drop.py --method alternating --threads 2
    ANALOGEBL_DATA=... python benchmarks/bench_ir_drop.py --track pessimistic --steps 20

For each tile and wire resistance: ``G`` uniform in [1e-6, 1e-5] S (a ReRAM range), ``--inputs``
input vectors ``v`` uniform in [0, 0.5] V, held terminals, no access device. Columns:

* ``drop``: size of the IR drop, ``max |I_oracle - v @ G| / max |v @ G|``;
* ``err``: the fast solver against the nodal oracle, ``max_j |I_fast - I_oracle| / max |I_oracle|``
  (worst input vector); ``err/col``: ``max_j |I_fast,j - I_oracle,j| / |I_oracle,j|``;
* ``sweeps``: row-and-column line sweeps of the fast solver (``tol = 1e-10``);
* ``oracle``, ``fast``, ``G_eff``: wall time of :func:`nodal_column_currents`,
  :func:`line_column_currents` (all inputs at once) and :func:`effective_conductance`
  (best of ``--repeat`` runs, one run where the oracle takes seconds);
* ``G_eff err``: ``max |v @ G_eff - I_oracle| / max |I_oracle|``;
* ``G_dec``, ``dec err``: wall time of :func:`decoupled_conductance` and its distance from the
  exact solve, ``||G_dec - G_eff||_F / ||G_eff||_F`` (the coupling through other cells, which
  the decoupled model leaves out).

``--track PROFILE``: the tracking of ``G_eff`` between exact solves
(``analogebl.hardware.crossbar``, module docstring) along a real trajectory: C-EP on the dense
MNIST network 784-512-10 (batch 128, ``dhn_mnist``, real MNIST when ``$ANALOGEBL_DATA`` is
set) under the profile, with the exact re-solves switched off. After every update and for
every weight tensor side: the relative Frobenius error against the exact solve of the tracked
``G_eff`` and of the last solve's attenuation kept (``G_eff,ref / G_ref * G``, the scheme before
tracking), the worst tile's tracked error, its estimate ``kappa drop ||dG|| / ||G||`` and the
largest ratio error / (drop ||dG|| / ||G||) over the tiles (``kappa`` bounds it).

BLAS/OpenMP run on ``--threads`` threads (default 1: one core), set before numpy loads.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32 x 32 tiles only")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="tile sizes (square)")
    ap.add_argument("--wires", type=float, nargs="+", default=[0.35, 2.1, 10.0], help="ohm")
    ap.add_argument("--inputs", type=int, default=4, help="input vectors per solve")
    ap.add_argument("--method", choices=["cg", "alternating"], default="cg")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--track", metavar="PROFILE", help="tracking along a training trajectory")
    ap.add_argument("--steps", type=int, default=10, help="updates for --track")
    return ap.parse_args(argv)


def track(args) -> int:
    """``--track``: the tracked ``G_eff`` against the exact solve along real updates."""
    import numpy as np

    from analogebl.hardware import load_profile
    from analogebl.hardware.crossbar import IR_TRACK_KAPPA
    from analogebl.learning import SGD, layer_learning_rates, make_rule
    from analogebl.network import Network
    from analogebl.training import CrossbarUpdater

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_profiles import batches

    data, (mean, std) = batches(128, args.steps, (784,))
    prof = load_profile(args.track)
    net = Network.from_catalog(
        "dhn_mnist", backend="numba", seed=args.seed, profile=prof, data_stats=(mean, std)
    )
    hw = CrossbarUpdater(
        net.backend, SGD(layer_learning_rates(list(net.parameters()), 0.1), 0.9), 0
    )
    xbar = hw.xbar
    if xbar.lines.ideal or not xbar.differential:
        print(f"{args.track}: no line resistance")
        return 0
    xbar.ir_tol = math.inf  # never solve again: the tracking's own error
    rule = make_rule("c_ep", 0.25, 15)

    def norm(x):
        return np.sqrt(np.einsum("aibj,aibj->ab", x, x))

    print(f"# {args.track}: C-EP on dhn_mnist, batch 128; exact re-solves off; kappa = "
          f"{IR_TRACK_KAPPA}")  # fmt: skip
    print(f"{'update':>6} {'tensor':>8} {'frozen':>9} {'tracked':>9} {'tile max':>9} "
          f"{'estimate':>9} {'err/(drop dG)':>13} {'exact s':>8}")  # fmt: skip
    for k, (x, y) in enumerate(data, start=1):
        net.train_step(x, y, rule, hw, 60)
        for (name, side), tr in sorted(xbar._ir.items()):
            G = xbar.pairs[name][side].visible
            t0 = time.perf_counter()
            exact = xbar.effective(G)
            t_exact = time.perf_counter() - t0
            P, E, T = xbar._padded(G), xbar._padded(exact), xbar._padded(tr.eff_last)
            with np.errstate(divide="ignore", invalid="ignore"):
                frozen = np.where(tr.g_ref > 0, tr.eff_ref / tr.g_ref, 1.0) * P
            total = np.linalg.norm(E)
            tiles = norm(T - E) / norm(E)
            dG = norm(P - tr.g_ref) / norm(tr.g_ref)
            worst = int(np.argmax(tiles))
            ratio = np.max(tiles / np.maximum(tr.drop * dG, 1e-300))
            print(
                f"{k:>6} {name + '/' + '+-'[side]:>8} {np.linalg.norm(frozen - E) / total:>9.2e} "
                f"{np.linalg.norm(T - E) / total:>9.2e} {tiles.flat[worst]:>9.2e} "
                f"{IR_TRACK_KAPPA * (tr.drop * dG).flat[worst]:>9.2e} {ratio:>13.4f} "
                f"{t_exact:>7.2f}s",
                flush=True,
            )
    return 0


def best_time(repeat: int, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` and its best wall time over ``repeat`` calls."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return result, best


def main(argv=None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # after the thread variables

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.track:
        return track(args)
    from analogebl.hardware.parasitics import (
        LineResistance,
        decoupled_conductance,
        effective_conductance,
        line_column_currents,
        nodal_column_currents,
    )

    sizes = args.sizes or ([32] if args.quick else [128, 512])
    print(
        f"# G ~ U[1e-6, 1e-5] S, v ~ U[0, 0.5] V, {args.inputs} inputs, method={args.method}, "
        f"tol=1e-10, {args.threads} thread(s), numpy {np.__version__}"
    )
    header = (
        f"{'tile':>9} {'r_wire':>6} {'drop':>8} {'err':>8} {'err/col':>8} {'sweeps':>6} "
        f"{'oracle':>8} {'fast':>8} {'G_eff':>8} {'G_eff err':>9} {'G_dec':>8} {'dec err':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        rng = np.random.default_rng(args.seed)
        G = rng.uniform(1e-6, 1e-5, (n, n))
        v = rng.uniform(0.0, 0.5, (args.inputs, n))
        ideal = v @ G
        for r_wire in args.wires:
            lines = LineResistance(r_wire_ohm=r_wire)
            repeat = args.repeat if n <= 128 else 1
            oracle, t_oracle = best_time(repeat, nodal_column_currents, G, v, lines)
            (fast, sweeps), t_fast = best_time(
                args.repeat, line_column_currents, G, v, lines, method=args.method
            )
            G_eff, t_eff = best_time(repeat, effective_conductance, G, lines)
            scale = np.max(np.abs(oracle), axis=1, keepdims=True)
            err = np.max(np.abs(fast - oracle) / scale)
            err_col = np.max(np.abs(fast - oracle) / np.abs(oracle))
            drop = np.max(np.abs(oracle - ideal) / np.max(np.abs(ideal), axis=1, keepdims=True))
            err_eff = np.max(np.abs(v @ G_eff - oracle) / scale)
            G_dec, t_dec = best_time(args.repeat, decoupled_conductance, G, lines)
            err_dec = np.linalg.norm(G_dec - G_eff) / np.linalg.norm(G_eff)
            print(
                f"{n:>4}x{n:<4} {r_wire:>6g} {drop:>8.2e} {err:>8.1e} {err_col:>8.1e} "
                f"{sweeps:>6d} {t_oracle:>7.3f}s {t_fast:>7.3f}s {t_eff:>7.3f}s {err_eff:>9.1e} "
                f"{t_dec:>7.3f}s {err_dec:>8.1e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
