"""Command-line interface: ``analogebl study|check|data ...``.

Bad input (unknown study, key, flag value, missing data) prints one line naming the file
and key and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from analogebl.backends import BACKENDS
from analogebl.errors import AnalogeblError

__all__ = ["main"]


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _study_list(args) -> int:
    from analogebl.catalog import list_entries
    from analogebl.study import load_study

    for name in list_entries("studies"):
        s = load_study(name)
        first = s["description"].strip().splitlines()[0] if s["description"] else ""
        print(f"{name:28s} {first}")
    return 0


def _study_show(args) -> int:
    from analogebl.study import load_study

    print(load_study(args.name, args.tier).to_toml(), end="")
    return 0


def _overrides(args) -> list:
    from analogebl.study import parse_set

    ov = [parse_set(s) for s in args.set or []]
    for flag, key in (("backend", "backend"), ("device", "device"), ("dtype", "dtype"),
                      ("seed", "seed"), ("epochs", "epochs")):
        v = getattr(args, flag, None)
        if v is not None:
            ov.append(parse_set(f"{key}={v!r}" if isinstance(v, str) else f"{key}={v}"))
    return ov


def _study_run(args) -> int:
    from analogebl.pipeline import run_training
    from analogebl.study import load_study

    study = load_study(args.name, args.tier, _overrides(args))
    out = Path(args.out or Path("runs") / study.name / f"{study.tier}-seed{study['seed']}")
    print(f"study {study.name} (tier {study.tier}): {study['dataset']}, circuit "
          f"{study['circuit.name']} x{study['circuit.width']}, rule {study['rule.name']}, "
          f"{study['epochs']} epochs", file=sys.stderr if args.json else sys.stdout)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    res = run_training(study, log=log, progress=None if not args.json else False)
    summary = {
        "study": study.name,
        "tier": study.tier,
        "epochs": len(res.epochs),
        "test_error": res.test_error,
        "test_accuracy": 1.0 - res.test_error,
        "seconds": round(res.seconds, 3),
        "out": str(out),
        "backend": res.network.backend.name,
        "history": [e.__dict__ for e in res.epochs],
    }
    _atomic_write(out / "config.toml", study.to_toml())
    _atomic_write(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"test accuracy {100 * summary['test_accuracy']:.2f}% after {summary['epochs']} "
              f"epochs in {summary['seconds']:.0f} s -> {out}")
    return 0


def _check_gradients(args) -> int:
    from analogebl.learning import RULES
    from analogebl.learning.gradcheck import check_gradients
    from analogebl.network import Network

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    for r in rules:
        if r not in RULES:
            raise _usage(f"--rules: unknown rule {r!r}; choose from {', '.join(RULES)}")
    net = Network.from_catalog(args.circuit, width=args.width, backend=args.backend,
                               dtype=args.dtype, seed=args.seed)
    betas = [float(b) for b in args.betas.split(",")] if args.betas else None
    res = check_gradients(net, rules, batch_size=args.batch, seed=args.seed, betas=betas,
                          iterations=args.iterations)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"circuit {res['circuit']} ({res['backend']}, {res['dtype']}), free residual "
          f"{res['free_residual']:.1e}")
    for name, e in res["rules"].items():
        xs = e.get("betas", e.get("iterations"))
        label = "beta" if "betas" in e else "iters"
        cells = "  ".join(f"{label}={x:g}: err {er:.2e} cos {c:.6f}"
                          for x, er, c in zip(xs, e["rel_error"], e["cosine"], strict=True))
        slope = f"  slope {e['slope']:.2f}" if "slope" in e else ""
        print(f"{name:6s}{slope}\n    {cells}")
    return 0


def _data_check(args) -> int:
    from analogebl.data import data_root, verify_checksums

    root = data_root(args.root)
    bad = 0
    for path, ok in verify_checksums(root):
        print(f"{'ok ' if ok else 'BAD'} {path}")
        bad += not ok
    return 1 if bad else 0


class _UsageError(AnalogeblError):
    pass


def _usage(msg: str) -> _UsageError:
    return _UsageError(msg)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="analogebl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    st = sub.add_parser("study", help="named studies").add_subparsers(dest="sub", required=True)
    st.add_parser("list", help="list catalog studies").set_defaults(fn=_study_list)
    sh = st.add_parser("show", help="print a study's resolved configuration")
    sh.add_argument("name")
    sh.add_argument("--tier", choices=("full", "cpu", "smoke"))
    sh.set_defaults(fn=_study_show)
    run = st.add_parser("run", help="train and evaluate a study")
    run.add_argument("name")
    run.add_argument("--tier", choices=("full", "cpu", "smoke"))
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a study key, e.g. --set epochs=3 --set circuit.width=0.25")
    run.add_argument("--backend", choices=BACKENDS)
    run.add_argument("--device")
    run.add_argument("--dtype", choices=("float32", "float64"))
    run.add_argument("--seed", type=int)
    run.add_argument("--epochs", type=int)
    run.add_argument("--out", help="result folder (default runs/STUDY/TIER-seedN)")
    run.add_argument("--json", action="store_true", help="end with one JSON summary line")
    run.set_defaults(fn=_study_run)

    ck = sub.add_parser("check", help="diagnostics").add_subparsers(dest="sub", required=True)
    g = ck.add_parser("gradients", help="each rule's update vs the implicit gradient")
    g.add_argument("--circuit", default="tiny_dense")
    g.add_argument("--rules", default="p_ep,n_ep,c_ep,cl,p_cpl,n_cpl,c_cpl,tbp,rbp")
    g.add_argument("--width", type=float)
    g.add_argument("--backend", default="reference", choices=BACKENDS[1:])
    g.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--iterations", type=int, default=2000)
    g.add_argument("--betas", help="comma-separated sweep (default 5 values in [1e-3, 1e-1])")
    g.add_argument("--json", action="store_true")
    g.set_defaults(fn=_check_gradients)

    dt = sub.add_parser("data", help="datasets").add_subparsers(dest="sub", required=True)
    dc = dt.add_parser("check", help="verify dataset files against MD5SUMS")
    dc.add_argument("--root", help="data folder (default $ANALOGEBL_DATA)")
    dc.set_defaults(fn=_data_check)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except AnalogeblError as exc:
        print(f"analogebl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("analogebl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
