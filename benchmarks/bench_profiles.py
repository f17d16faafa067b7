"""Cost of each hardware profile over the software simulator (one C-EP training step).

    python benchmarks/bench_profiles.py --circuit dhn_mnist --batch 128 --backend numba
    python benchmarks/bench_profiles.py --circuit dchn32 --width 0.25 --batch 32

For every catalog profile: seconds per training step (60 free + 2 x 15 nudged iterations +
the update realised as pulses), the slowdown against ``ideal_fp32``, pulses and energy per
update. Real MNIST batches when ``$ANALOGEBL_DATA`` is set, else Gaussian inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analogebl.hardware import list_profiles, load_profile  # noqa: E402
from analogebl.learning import SGD, layer_learning_rates, make_rule  # noqa: E402
from analogebl.network import Network  # noqa: E402
from analogebl.training import CrossbarUpdater, IdealUpdater  # noqa: E402


def batches(batch: int, n: int, in_shape, dataset: str = "mnist", pad_to=None):
    if os.environ.get("ANALOGEBL_DATA"):
        from analogebl.data import iterate_batches, load_dataset

        ds = load_dataset(dataset, train_subset=batch * n, subset_seed=0)
        return list(
            iterate_batches(
                ds.train_x,
                ds.train_y,
                batch,
                rng=None,
                mean=ds.mean,
                std=ds.std,
                pad_to=pad_to,
                augmentation=None,
                dtype=np.float32,
            )
        ), (ds.mean, ds.std)
    rng = np.random.default_rng(0)
    return [
        (rng.normal(size=(batch, *in_shape)).astype(np.float32), rng.integers(0, 10, batch))
        for _ in range(n)
    ], ((0.0,), (1.0,))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuit", default="dhn_mnist")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--width", type=float, default=None, help="a DCHN's channel multiplier")
    ap.add_argument("--gain", type=float, default=None, help="a DCHN's gain (every layer)")
    ap.add_argument(
        "--profiles",
        default="",
        help="comma-separated profiles (default: every catalog profile); ideal_fp32 is "
        "always measured as the baseline",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    names = [p for p in args.profiles.split(",") if p] or list_profiles()
    if "ideal_fp32" not in names:
        names.insert(0, "ideal_fp32")
    conv = args.circuit.startswith("dchn")
    data, (mean, std) = batches(
        args.batch,
        args.steps + 1,
        (1, 32, 32) if conv else (784,),
        "fmnist" if conv else "mnist",
        32 if conv else None,
    )
    shape = {"in_channels": 1} if conv else {}
    if args.width:
        shape["width"] = args.width
    if args.gain:
        shape["gains"] = [args.gain] * 5
    rows = []
    for name in names:
        prof = load_profile(name)
        net = Network.from_catalog(
            args.circuit,
            backend=args.backend,
            seed=0,
            profile=prof,
            data_stats=(mean, std),
            **shape,
        )
        opt = SGD(layer_learning_rates(list(net.parameters()), 0.05), 0.9)
        hw = None if prof.is_ideal else CrossbarUpdater(net.backend, opt, 0)
        up = hw or IdealUpdater(opt)
        rule = make_rule("c_ep", 0.25, 15)
        net.train_step(*data[0], rule, up, 60)  # warm-up (JIT, buffers)
        p0 = hw.pulses if hw else 0
        e0 = hw.epoch_metrics()["energy_J"] if hw else 0.0
        t = time.perf_counter()
        for xb, yb in data[1:]:
            net.train_step(xb, yb, rule, up, 60)
        sec = (time.perf_counter() - t) / args.steps
        pulses = (hw.pulses - p0) / args.steps if hw else 0.0
        energy = ((hw.epoch_metrics()["energy_J"] - e0) / args.steps) if hw else 0.0
        rows.append(
            {
                "profile": name,
                "s_per_step": sec,
                "pulses_per_update": pulses,
                "energy_J_per_update": energy,
            }
        )
    base = next(r["s_per_step"] for r in rows if r["profile"] == "ideal_fp32")
    for r in rows:
        r["slowdown"] = r["s_per_step"] / base
    if args.json:
        print(json.dumps(rows))
    else:
        print(
            f"{'profile':14s} {'s/step':>8s} {'slowdown':>9s} {'pulses/update':>14s} "
            f"{'J/update':>10s}"
        )
        for r in rows:
            print(
                f"{r['profile']:14s} {r['s_per_step']:8.3f} {r['slowdown']:8.2f}x "
                f"{r['pulses_per_update']:14.3g} {r['energy_J_per_update']:10.3g}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
