"""16-bit relaxation on torch CPU: throughput and the EP gradient error it adds, per layer.

    python benchmarks/bench_half_precision.py
    python benchmarks/bench_half_precision.py --circuits dchn32 --dtypes float32,bfloat16 --json

For each circuit (``dhn_mnist`` at ``--batch``; ``dchn32`` at width ``--width`` on 1x32x32
Fashion-MNIST at ``--conv-batch``) and each dtype (float64, float32, bfloat16, float16) on
the torch backend:

* **throughput**: seconds per training step (``Network.train_step``: ``--free`` free
  iterations from the warm state, C-EP's two nudged phases of ``--nudge`` iterations, the
  SGD update) and samples/s, the mean over ``--steps`` steps after a short warm-up;
* **gradient error per coupling**: C-EP(``--beta``) from a relaxation in that dtype
  (``--grad-free`` free and ``--grad-nudge`` nudged iterations on ``--grad-batch``
  examples) against the float64 implicit gradient at the same weights (every dtype loads
  the float32 masters, exact in float64): relative L2 error and cosine, and ``added``, the
  error the dtype adds to float64 C-EP at the same beta (relative to the implicit
  gradient's norm). float64's row is C-EP's own beta bias.

Real MNIST / Fashion-MNIST batches when ``$ANALOGEBL_DATA`` is set, else Gaussian inputs.
torch's CPU float16 convolutions have no fast kernel on most CPUs (bfloat16 has oneDNN's):
that shows in the dchn32 float16 row.
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

from analogebl.learning import SGD, estimate, layer_learning_rates, make_rule  # noqa: E402
from analogebl.network import Network  # noqa: E402
from analogebl.training import IdealUpdater  # noqa: E402

DTYPES = ("float64", "float32", "bfloat16", "float16")


def batches(dataset: str, batch: int, n: int, in_shape, pad_to=None):
    """``n`` batches of real images (``$ANALOGEBL_DATA``) or Gaussian inputs."""
    if os.environ.get("ANALOGEBL_DATA"):
        from analogebl.data import iterate_batches, load_dataset

        ds = load_dataset(dataset, train_subset=batch * n, subset_seed=0)
        return list(
            iterate_batches(ds.train_x, ds.train_y, batch, rng=None, mean=ds.mean, std=ds.std,
                            pad_to=pad_to, augmentation=None, dtype=np.float32)
        ), "real"  # fmt: skip
    rng = np.random.default_rng(0)
    return [
        (rng.normal(size=(batch, *in_shape)).astype(np.float32), rng.integers(0, 10, batch))
        for _ in range(n)
    ], "gaussian"


def build(circuit: str, dtype: str, width: float, params=None) -> Network:
    shape = {"in_channels": 1, "width": width} if circuit.startswith("dchn") else {}
    net = Network.from_catalog(circuit, backend="torch", dtype=dtype, seed=0, **shape)
    if params is not None:
        net.load_parameters(params)
    return net


def throughput(net: Network, data, free: int, nudge: int, beta: float) -> float:
    """Seconds per training step (mean over the timed batches)."""
    b = net.backend
    b.relax(b.zero_state(data[0][0]), 2)  # warm-up: kernels, oneDNN primitives
    up = IdealUpdater(SGD(layer_learning_rates(list(net.parameters()), 0.05), 0.9))
    rule = make_rule("c_ep", beta, nudge)
    t = time.perf_counter()
    for xb, yb in data:
        net.train_step(xb, yb, rule, up, free)
    return (time.perf_counter() - t) / len(data)


def exact_gradient(circuit: str, params, x, y, width: float, max_iterations: int):
    """The float64 implicit gradient at the float64 free equilibrium (and its residual)."""
    net = build(circuit, "float64", width, {k: v.astype(np.float64) for k, v in params.items()})
    b = net.backend
    s = b.zero_state(x)
    for _ in range(max(1, max_iterations // 50)):
        s = b.relax(s, 50)
        if b.residual(s) < 1e-12:
            break
    g, cg = b.implicit_gradient(s, b.one_hot(y), tol=1e-10)
    return {k: b.to_numpy(v) for k, v in g.items()}, b.residual(s), cg


def ep_gradient(net: Network, x, y, free: int, nudge: int, beta: float):
    b = net.backend
    s = b.relax(b.zero_state(x), free)
    g, _ = estimate(b, make_rule("c_ep", beta, nudge), s, b.one_hot(y))
    return {k: b.to_numpy(v).astype(np.float64) for k, v in g.items()}, b.residual(s)


def compare(g, g64, exact) -> dict[str, dict[str, float]]:
    out = {}
    for k, e in exact.items():
        a, e = g[k].ravel(), e.ravel()
        ne = np.linalg.norm(e)
        out[k] = {
            "rel_error": float(np.linalg.norm(a - e) / ne),
            "cosine": float(a @ e / (np.linalg.norm(a) * ne)),
            "added": float(np.linalg.norm(a - g64[k].ravel()) / ne),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", default="dhn_mnist,dchn32")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--batch", type=int, default=128, help="dhn_mnist batch")
    ap.add_argument("--conv-batch", type=int, default=32, help="dchn32 batch")
    ap.add_argument("--width", type=float, default=0.25, help="dchn32 channel multiplier")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per dtype")
    ap.add_argument("--free", type=int, default=60)
    ap.add_argument("--nudge", type=int, default=15)
    ap.add_argument("--beta", type=float, default=0.1, help="C-EP beta of the gradient check")
    ap.add_argument("--train-beta", type=float, default=0.25, help="C-EP beta of the steps")
    ap.add_argument("--grad-batch", type=int, default=16)
    ap.add_argument("--grad-free", type=int, default=150)
    ap.add_argument("--grad-nudge", type=int, default=60)
    ap.add_argument("--ref-iterations", type=int, default=2000, help="float64 free phase cap")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    dtypes = [d for d in args.dtypes.split(",") if d]
    rows = []
    for circuit in [c for c in args.circuits.split(",") if c]:
        conv = circuit.startswith("dchn")
        batch = args.conv_batch if conv else args.batch
        data, source = batches(
            "fmnist" if conv else "mnist",
            batch,
            args.steps + 1,
            (1, 32, 32) if conv else (784,),
            32 if conv else None,
        )
        params = build(circuit, "float32", args.width).parameters()  # the float32 masters
        xg, yg = data[-1][0][: args.grad_batch], data[-1][1][: args.grad_batch]
        exact, res64, cg = exact_gradient(circuit, params, xg, yg, args.width,
                                          args.ref_iterations)  # fmt: skip
        g64 = None
        for dtype in ["float64"] + [d for d in dtypes if d != "float64"]:
            net = build(circuit, dtype, args.width, params)
            g, res = ep_gradient(net, xg, yg, args.grad_free, args.grad_nudge, args.beta)
            g64 = g if dtype == "float64" else g64
            if dtype not in dtypes:
                continue
            sec = throughput(build(circuit, dtype, args.width, params), data[: args.steps],
                             args.free, args.nudge, args.train_beta)  # fmt: skip
            rows.append({
                "circuit": circuit, "dtype": dtype, "batch": batch, "data": source,
                "s_per_step": sec, "samples_per_s": batch / sec,
                "beta": args.beta, "grad_batch": len(yg), "free_residual": res,
                "float64_free_residual": res64, "implicit_cg_residual": cg,
                "gradient": compare(g, g64, exact),
            })  # fmt: skip
            if not args.json:
                print(f"... {circuit} {dtype}: {sec:.3f} s/step", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"steps: {args.free} free + 2 x {args.nudge} C-EP(beta={args.train_beta}) + SGD; "
          f"gradient: C-EP(beta={args.beta}), {args.grad_free} free + 2 x {args.grad_nudge} "
          f"nudged iterations vs the float64 implicit gradient (rel / cos / added)")  # fmt: skip
    for circuit in dict.fromkeys(r["circuit"] for r in rows):
        sub = [r for r in rows if r["circuit"] == circuit]
        names = [k for k in sub[0]["gradient"] if k.startswith("W")]
        r0 = sub[0]
        print(
            f"\n{circuit} (batch {r0['batch']}, {r0['data']} data; gradient batch "
            f"{r0['grad_batch']}, float64 free residual {r0['float64_free_residual']:.1e})"
        )
        head = f"{'dtype':9s} {'s/step':>8s} {'samples/s':>10s}"
        print(head + "".join(f"  {n + ' rel/cos/added':>26s}" for n in names))
        for r in sub:
            line = f"{r['dtype']:9s} {r['s_per_step']:8.3f} {r['samples_per_s']:10.1f}"
            for n in names:
                e = r["gradient"][n]
                line += f"  {e['rel_error']:8.4f} {e['cosine']:8.5f} {e['added']:8.4f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
