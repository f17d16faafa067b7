"""Command-line interface: ``analogebl study|check|data ...``.

Bad input (unknown study, key, flag value, missing data) prints one line naming the file
and key and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from analogebl.backends import BACKENDS
from analogebl.errors import AnalogeblError

__all__ = ["main"]


def _study_list(args) -> int:
    from analogebl.catalog import list_entries
    from analogebl.study import load_study

    for name in list_entries("studies"):
        s = load_study(name)
        first = s["description"].strip().splitlines()[0] if s["description"] else ""
        n = len(s.runs())
        print(f"{name:26s} {n:3d} run{'s' if n != 1 else ' '}  {first}")
    return 0


def _study_show(args) -> int:
    from analogebl.study import load_study

    print(load_study(args.name, args.tier).to_toml(), end="")
    return 0


def _parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (inclusive)."""
    try:
        if "-" in text and "," not in text:
            a, b = (int(v) for v in text.split("-", 1))
            seeds = list(range(a, b + 1))
        else:
            seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise _usage(f"--seeds: expected a list like 0,1,2 or a range like 0-4, got {text!r}")
    return seeds


def _overrides(args) -> tuple[list, dict]:
    from analogebl.study import parse_set

    ov = [parse_set(s) for s in args.set or []]
    for flag, key in (
        ("backend", "backend"),
        ("device", "device"),
        ("dtype", "dtype"),
        ("seed", "seed"),
        ("epochs", "epochs"),
        ("profile", "profile"),
        ("threads", "threads"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            quote = isinstance(v, str) and key != "threads"  # --threads 2 is a number
            ov.append(parse_set(f"{key}={v!r}" if quote else f"{key}={v}"))
    sweep = {}
    if getattr(args, "seeds", None):
        if args.seed is not None:
            raise _usage("give --seed or --seeds, not both")
        sweep["seed"] = _parse_seeds(args.seeds)
    return ov, sweep


def _study_run(args) -> int:
    from analogebl.study import load_study
    from analogebl.study.runner import run_study

    if args.profile is not None:
        from analogebl.hardware import load_profile

        load_profile(args.profile)
    ov, sweep = _overrides(args)
    study = load_study(args.name, args.tier, ov, sweep)
    out = Path(args.out or Path("runs") / f"{study.name}-{study.tier}")
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    runs = study.runs()
    first = runs[0]
    what = (
        f"model {first['model.name']}"
        if first["model.name"] is not None
        else f"circuit {first['circuit.name']} x{first['circuit.width']}"
    )
    say(
        f"study {study.name} (tier {study.tier}): {first['dataset']}, {what}, {len(runs)} "
        f"run(s), {first['epochs']} epochs each -> {out}"
    )
    res = run_study(
        study,
        out,
        executor=args.executor,
        log=say,
        progress=None if not args.json else False,
        checkpoint_seconds=args.checkpoint_seconds,
        quiet=args.json,
    )
    report = []
    try:
        from analogebl.reporting import write_report

        report = [str(p) for p in write_report(out)]
    except ImportError:  # pragma: no cover - reporting ships with the package
        pass
    summary = {
        "study": study.name,
        "tier": study.tier,
        "out": str(out),
        "runs": [r.__dict__ for r in res],
        "report": report,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for r in res:
            what = (
                f"test error {100 * r.test_error:6.2f}%  train error "
                f"{100 * r.train_error:6.2f}%  ({r.epochs} epochs, {r.seconds:.0f} s)"
                if r.status == "complete"
                else f"DIVERGED: {r.message}"
            )
            print(f"{r.run_id:24s} {what}")
        if report:
            print(f"report: {report[0]}")
    return 2 if any(r.status != "complete" for r in res) else 0


def _study_report(args) -> int:
    from analogebl.reporting import write_report

    paths = write_report(Path(args.dir), Path(args.out) if args.out else None)
    for p in paths:
        print(p)
    return 0


def _profile_list(args) -> int:
    from analogebl.hardware import list_profiles

    for name, desc in list_profiles().items():
        print(f"{name:16s} {desc}")
    return 0


def _profile_show(args) -> int:
    from analogebl.hardware import load_profile

    prof = load_profile(args.name)
    rows = prof.describe()
    w = max(len(r[0]) for r in rows)
    for key, value, unit, source in rows:
        print(f"{key:{w}s}  {value:>14s} {unit:6s} {source}")
    return 0


def _check_gradients(args) -> int:
    from analogebl.diagnostics.gradcheck import check_gradients
    from analogebl.learning import RULES
    from analogebl.network import Network

    if args.model:
        return _check_model_gradients(args)
    rules = [r.strip() for r in (args.rules or ",".join(RULES)).split(",") if r.strip()]
    for r in rules:
        if r not in RULES:
            raise _usage(f"--rules: unknown rule {r!r}; choose from {', '.join(RULES)}")
    net = Network.from_catalog(
        args.circuit, width=args.width, backend=args.backend, dtype=args.dtype, seed=args.seed
    )
    betas = [float(b) for b in args.betas.split(",")] if args.betas else None
    res = check_gradients(
        net, rules, batch_size=args.batch, seed=args.seed, betas=betas, iterations=args.iterations
    )
    if args.json:
        print(json.dumps(res))
        return 0
    print(
        f"circuit {res['circuit']} ({res['backend']}, {res['dtype']}), free residual "
        f"{res['free_residual']:.1e}"
    )
    _print_rule_rows(res["rules"])
    return 0


def _print_rule_rows(rules: dict) -> None:
    """One block per rule: error and cosine against the implicit gradient per beta (or per
    number of iterations for the backprop baselines), and the fitted slope."""
    for name, e in rules.items():
        if "error" in e:
            print(f"{name:6s} not applicable: {e['error']}")
            continue
        xs = e.get("betas", e.get("iterations"))
        label = "beta" if "betas" in e else "iters"
        cells = "  ".join(
            f"{label}={x:g}: err {er:.2e} cos {c:.6f}"
            for x, er, c in zip(xs, e["rel_error"], e["cosine"], strict=True)
        )
        slope = f"  slope {e['slope']:.2f}" if "slope" in e else ""
        print(f"{name:6s}{slope}\n    {cells}")


def _check_model_gradients(args) -> int:
    from analogebl.diagnostics.gradcheck import check_model_gradients
    from analogebl.models import MODELS
    from analogebl.models.rules import MODEL_RULES

    if args.model not in MODELS:
        raise _usage(f"--model: unknown model {args.model!r}; choose from {', '.join(MODELS)}")
    rules = [r.strip() for r in (args.rules or ",".join(MODEL_RULES)).split(",") if r.strip()]
    for r in rules:
        if r not in MODEL_RULES:
            raise _usage(
                f"--rules: {r!r} does not train recurrent models; choose from "
                f"{', '.join(MODEL_RULES)}"
            )
    betas = [float(b) for b in args.betas.split(",")] if args.betas else None
    res = check_model_gradients(
        args.model,
        rules,
        batch_size=args.batch,
        seed=args.seed,
        betas=betas,
        iterations=args.iterations,
    )
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"model {res['model']} (torch, float64)")
    _print_rule_rows(res["rules"])
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
    sh.add_argument("--tier", help="full, cpu, smoke, or a tier the study adds (extra_tiers)")
    sh.set_defaults(fn=_study_show)
    run = st.add_parser("run", help="train and evaluate a study")
    run.add_argument("name")
    run.add_argument("--tier", help="full, cpu, smoke, or a tier the study adds (extra_tiers)")
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a study key, e.g. --set epochs=3 --set circuit.width=0.25",
    )
    run.add_argument("--backend", choices=BACKENDS)
    run.add_argument("--device")
    run.add_argument("--dtype", choices=("float32", "float64"))
    run.add_argument("--seed", type=int, help="one seed (replaces a seed sweep)")
    run.add_argument("--seeds", help="seed sweep: 0,1,2 or 0-4")
    run.add_argument("--profile", help="hardware profile (see `analogebl profile list`)")
    run.add_argument("--epochs", type=int)
    run.add_argument(
        "--threads",
        help="threads per run: N, or auto (default: the cores not "
        "busy with other work when the run starts, split among workers)",
    )
    run.add_argument(
        "--out", help="result folder (default runs/STUDY-TIER); an existing one is resumed"
    )
    run.add_argument(
        "--executor",
        default="local",
        help="local (default), local:N processes, or dask://HOST:PORT",
    )
    run.add_argument(
        "--checkpoint-seconds",
        type=float,
        dest="checkpoint_seconds",
        help="checkpoint interval inside an epoch (default: the study's checkpoint_minutes)",
    )
    run.add_argument("--json", action="store_true", help="end with one JSON summary line")
    run.set_defaults(fn=_study_run)
    rp = st.add_parser("report", help="tables and figures from the HDF5 files under DIR")
    rp.add_argument("dir")
    rp.add_argument("--out", help="report folder (default DIR/report)")
    rp.set_defaults(fn=_study_report)

    pr = sub.add_parser("profile", help="hardware profiles").add_subparsers(
        dest="sub", required=True
    )
    pr.add_parser("list", help="list catalog profiles").set_defaults(fn=_profile_list)
    ps = pr.add_parser("show", help="every field of a profile with unit and source")
    ps.add_argument("name")
    ps.set_defaults(fn=_profile_show)

    ck = sub.add_parser("check", help="diagnostics").add_subparsers(dest="sub", required=True)
    g = ck.add_parser("gradients", help="each rule's update vs the implicit gradient")
    g.add_argument("--circuit", default="tiny_dense")
    g.add_argument(
        "--model", help="check a recurrent model instead (looped_mlp, toroidal_mlp, modern_eqprop)"
    )
    g.add_argument("--rules", help="comma-separated (default: every rule of the circuit or model)")
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
