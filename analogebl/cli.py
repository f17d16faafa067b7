"""Command-line interface: ``analogebl study|profile|check|data ...``.

Bad input (unknown study, key, flag value, missing data) prints one line naming the file
and key (or the flag) and exits with status 2; a flag value is checked by argparse when the
command line is parsed. ``study list`` and ``profile list`` list every catalog entry: an
entry that cannot be loaded is shown with its error in place of its description, the rest
are still listed, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from analogebl.backends import BACKENDS
from analogebl.errors import AnalogeblError
from analogebl.spec import DTYPES

__all__ = ["main"]


# seeds are recorded as 64-bit integers (HDF5 attributes, RNG seed sequences)
MAX_SEED = 2**63 - 1
# a --seeds range runs one study run per seed: more than this is a typo (0-10000000)
MAX_SEEDS = 10_000
_DTYPE_HELP = "float16 and bfloat16 (16-bit relaxation) run on the torch backend only"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _one_line(exc: BaseException) -> str:
    """An error message on one line (a message never spans lines on the terminal)."""
    return " ".join(str(exc).split())


def _study_list(args) -> int:
    from analogebl.catalog import load_entries
    from analogebl.study import load_study

    def summary(name: str) -> tuple[int, str]:
        s = load_study(name)
        return len(s.runs()), _first_line(s["description"] or "")

    broken = 0
    for name, entry in load_entries("studies", summary).items():
        if isinstance(entry, AnalogeblError):
            print(f"{name:26s} ERROR  {_one_line(entry)}")
            broken += 1
            continue
        n, first = entry
        print(f"{name:26s} {n:3d} run{'s' if n != 1 else ' '}  {first}")
    return 1 if broken else 0


def _study_show(args) -> int:
    from analogebl.study import load_study

    study = load_study(args.name, args.tier)
    print(study.to_toml(), end="")
    if study.claims:  # TOML comments: the output still parses as the resolved study
        print("\n# claims (tested by `analogebl study report` over seeds; not run values):")
        for c in study.claims:
            print(f"#   {c.name}: {c.text()}")
            if c.description:
                print(f"#     {' '.join(c.description.split())}")
    return 0


def _parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (inclusive): distinct integers in ``0..MAX_SEED``, at most
    ``MAX_SEEDS`` of them."""
    form = f"--seeds: expected a list like 0,1,2 or a range like 0-4, got {text!r}"
    try:
        if "-" in text and "," not in text:
            a, b = (int(v) for v in text.split("-", 1))
            if b < a or b - a >= MAX_SEEDS:
                raise _usage(f"{form} (a range runs 1 to {MAX_SEEDS} seeds, first <= last)")
            seeds = list(range(a, b + 1))
        else:
            items = [v.strip() for v in text.split(",")]
            if items and not items[-1]:  # one trailing comma is harmless: 0,1,
                items.pop()
            seeds = [int(v) for v in items]
    except ValueError:
        raise _usage(form) from None
    if not seeds:
        raise _usage(form)
    for v in seeds:
        if not 0 <= v <= MAX_SEED:
            raise _usage(f"--seeds: seed {v} is outside 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        twice = sorted({v for v in seeds if seeds.count(v) > 1})
        raise _usage(f"--seeds: seed {twice[0]} is given twice (each seed runs once)")
    if len(seeds) > MAX_SEEDS:
        raise _usage(f"--seeds: {len(seeds)} seeds, at most {MAX_SEEDS}")
    return seeds


def _overrides(args) -> tuple[list, dict, dict]:
    from analogebl.study import parse_set
    from analogebl.study.config import check_flag

    ov = [parse_set(s) for s in args.set or []]
    flags = {}  # study key -> the flag that set it (named in an error)
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
        if v is not None:  # the value as given (no round trip through TOML text)
            ov.append(check_flag(f"--{flag}", key, v))
            flags[key] = f"--{flag}"
    sweep = {}
    if getattr(args, "seeds", None):
        if args.seed is not None:
            raise _usage("give --seed or --seeds, not both")
        sweep["seed"] = _parse_seeds(args.seeds)
        flags["seed"] = "--seeds"
    return ov, sweep, flags


def _study_run(args) -> int:
    from analogebl.errors import ConfigError
    from analogebl.reporting import write_report
    from analogebl.study import load_study
    from analogebl.study.runner import lock_out, parse_executor, plan_runs, run_study

    if args.profile is not None and args.profile != "none":
        from analogebl.hardware import load_profile

        try:
            load_profile(args.profile)
        except ConfigError as exc:  # an unknown name or a missing file: say which flag
            if exc.key is not None:  # a bad value inside the profile file: its own key
                raise
            raise ConfigError(exc.message, path=exc.path, key="--profile") from None
    ov, sweep, flags = _overrides(args)
    study = load_study(args.name, args.tier, ov, sweep, flags)
    out = Path(args.out or Path("runs") / f"{study.name}-{study.tier}")
    parse_executor(args.executor)
    plan_runs(study, out)  # every check passes before the folder is created or locked
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
    with lock_out(out):  # the report is written under the same lock as the runs
        res = run_study(
            study,
            out,
            executor=args.executor,
            log=say,
            progress=None if not args.json else False,
            checkpoint_seconds=args.checkpoint_seconds,
            quiet=args.json,
        )
        report = [str(p) for p in write_report(out)]
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


def _writable_folder(path: Path, flag: str) -> None:
    """Refuse an output folder that cannot be created, before anything is read or written:
    the path must be a folder or not exist yet, and its nearest existing ancestor a
    writable folder."""
    if path.exists():
        if not path.is_dir():
            raise _usage(f"{flag}: {path} exists and is not a folder")
        probe = path
    else:
        probe = path.absolute().parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise _usage(f"{flag}: cannot create {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise _usage(f"{flag}: cannot create {path}: {probe} is not writable")


def _study_report(args) -> int:
    from analogebl.reporting import write_report

    root = Path(args.dir)
    if not root.is_dir():
        raise _usage(f"{root}: not an existing folder (the folder of a study's run files)")
    out = Path(args.out) if args.out is not None else root / "report"
    _writable_folder(out, "--out" if args.out is not None else "report folder")
    paths = write_report(root, out)
    for p in paths:
        print(p)
    return 0


def _profile_list(args) -> int:
    from analogebl.catalog import load_entries
    from analogebl.hardware import load_profile

    broken = 0
    for name, prof in load_entries("hardware_profiles", load_profile).items():
        if isinstance(prof, AnalogeblError):
            print(f"{name:16s} ERROR  {_one_line(prof)}")
            broken += 1
        else:
            print(f"{name:16s} {_first_line(prof.description)}")
    return 1 if broken else 0


def _profile_show(args) -> int:
    from analogebl.hardware import load_profile

    prof = load_profile(args.name)
    print(f"{prof.name}: {prof.description or '(no description)'}")
    print(f"file: {prof.path}" + (f" (extends {prof.extends})" if prof.extends else ""))
    if prof.references:
        print("references:")
        for ref in prof.references:
            print(f"  - {ref}")
    print()
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
    rules = list(RULES) if args.rules is None else args.rules
    for r in rules:
        if r not in RULES:
            raise _usage(f"--rules: unknown rule {r!r}; choose from {', '.join(RULES)}")
    net = Network.from_catalog(
        args.circuit, width=args.width, backend=args.backend, dtype=args.dtype, seed=args.seed
    )
    res = check_gradients(
        net,
        rules,
        batch_size=args.batch,
        seed=args.seed,
        betas=args.betas,
        iterations=args.iterations,
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
    rules = list(MODEL_RULES) if args.rules is None else args.rules
    for r in rules:
        if r not in MODEL_RULES:
            raise _usage(
                f"--rules: {r!r} does not train recurrent models; choose from "
                f"{', '.join(MODEL_RULES)}"
            )
    res = check_model_gradients(
        args.model,
        rules,
        batch_size=args.batch,
        seed=args.seed,
        betas=args.betas,
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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line ``analogebl: error: ...``
    (the subcommand, the flag, what was expected), exit status 2."""

    def error(self, message: str):
        cmd = self.prog.removeprefix("analogebl").strip()
        where = f"{cmd}: " if cmd else ""
        helper = f"analogebl {cmd} --help" if cmd else "analogebl --help"
        self.exit(2, f"analogebl: error: {where}{' '.join(message.split())} (see {helper})\n")


def _integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``lo..hi``."""

    def parse(text: str) -> int:
        try:
            v = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}")
        return v

    return parse


def _number(text: str, zero: bool = False) -> float:
    """A finite number > 0 (>= 0 when ``zero``); NaN and Inf are refused."""
    try:
        v = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
    return v


def _positive(text: str) -> float:
    return _number(text)


def _non_negative(text: str) -> float:
    return _number(text, zero=True)


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _threads(text: str) -> int | str:
    """``auto`` or a thread count >= 1."""
    if text.strip() == "auto":
        return "auto"
    try:
        return _integer(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a thread count >= 1 or 'auto', got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    """A comma-separated list of distinct names (one trailing comma allowed)."""
    items = [v.strip() for v in text.split(",")]
    if items and not items[-1]:
        items.pop()
    if not items or not all(items):
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    twice = [v for i, v in enumerate(items) if v in items[:i]]
    if twice:
        raise argparse.ArgumentTypeError(f"{twice[0]!r} is given twice")
    return items


def _betas(text: str) -> list[float]:
    """A comma-separated sweep of distinct finite numbers > 0."""
    items = [v.strip() for v in text.split(",")]
    if items and not items[-1]:
        items.pop()
    if not items or not all(items):
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    out = []
    for v in items:
        try:
            out.append(_positive(v))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"beta {v!r}: {exc}") from None
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"a beta is given twice in {text!r}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``analogebl`` argument parser; every flag value is checked when parsed."""
    p = _Parser(prog="analogebl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    st = sub.add_parser("study", help="named studies").add_subparsers(dest="sub", required=True)
    st.add_parser(
        "list", help="list catalog studies (exit status 1 if one cannot be loaded)"
    ).set_defaults(fn=_study_list)
    tier_help = "full, cpu, smoke, or a tier the study adds (extra_tiers)"
    sh = st.add_parser("show", help="print a study's resolved configuration")
    sh.add_argument("name", type=_nonempty)
    sh.add_argument("--tier", type=_nonempty, help=tier_help)
    sh.set_defaults(fn=_study_show)
    run = st.add_parser("run", help="train and evaluate a study")
    run.add_argument("name", type=_nonempty)
    run.add_argument("--tier", type=_nonempty, help=tier_help)
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a study key, e.g. --set epochs=3 --set circuit.width=0.25",
    )
    run.add_argument("--backend", choices=BACKENDS)
    run.add_argument("--device", type=_nonempty)
    run.add_argument("--dtype", choices=DTYPES, help=_DTYPE_HELP)
    run.add_argument("--seed", type=_integer(0, MAX_SEED), help="one seed (replaces a seed sweep)")
    run.add_argument("--seeds", help="seed sweep: 0,1,2 or 0-4 (distinct seeds)")
    run.add_argument(
        "--profile", type=_nonempty, help="hardware profile (see `analogebl profile list`)"
    )
    run.add_argument("--epochs", type=_integer(1))
    run.add_argument(
        "--threads",
        type=_threads,
        help="threads per run: N, or auto (default: the cores not "
        "busy with other work when the run starts, split among workers)",
    )
    run.add_argument(
        "--out",
        type=_nonempty,
        help="result folder (default runs/STUDY-TIER); an existing one is resumed",
    )
    run.add_argument(
        "--executor",
        default="local",
        help="local (default), local:N processes, or dask://HOST:PORT",
    )
    run.add_argument(
        "--checkpoint-seconds",
        type=_non_negative,
        dest="checkpoint_seconds",
        help="checkpoint interval inside an epoch, 0: every step (default: the study's "
        "checkpoint_minutes)",
    )
    run.add_argument("--json", action="store_true", help="end with one JSON summary line")
    run.set_defaults(fn=_study_run)
    rp = st.add_parser("report", help="tables and figures from the HDF5 files under DIR")
    rp.add_argument("dir", type=_nonempty)
    rp.add_argument("--out", type=_nonempty, help="report folder (default DIR/report)")
    rp.set_defaults(fn=_study_report)

    pr = sub.add_parser("profile", help="hardware profiles").add_subparsers(
        dest="sub", required=True
    )
    pr.add_parser(
        "list", help="list catalog profiles (exit status 1 if one cannot be loaded)"
    ).set_defaults(fn=_profile_list)
    ps = pr.add_parser("show", help="every field of a profile with unit and source")
    ps.add_argument("name", type=_nonempty)
    ps.set_defaults(fn=_profile_show)

    ck = sub.add_parser("check", help="diagnostics").add_subparsers(dest="sub", required=True)
    g = ck.add_parser("gradients", help="each rule's update vs the implicit gradient")
    g.add_argument("--circuit", type=_nonempty, default="tiny_dense")
    g.add_argument(
        "--model",
        type=_nonempty,
        help="check a recurrent model instead (looped_mlp, toroidal_mlp, modern_eqprop)",
    )
    g.add_argument(
        "--rules", type=_names, help="comma-separated (default: every rule of the circuit or model)"
    )
    g.add_argument("--width", type=_positive)
    g.add_argument("--backend", default="reference", choices=BACKENDS[1:])
    g.add_argument("--dtype", default="float64", choices=DTYPES, help=_DTYPE_HELP)
    g.add_argument("--seed", type=_integer(0, MAX_SEED), default=1)
    g.add_argument("--batch", type=_integer(1), default=1)
    g.add_argument("--iterations", type=_integer(1), default=2000)
    g.add_argument(
        "--betas", type=_betas, help="comma-separated sweep (default 5 values in [1e-3, 1e-1])"
    )
    g.add_argument("--json", action="store_true")
    g.set_defaults(fn=_check_gradients)

    dt = sub.add_parser("data", help="datasets").add_subparsers(dest="sub", required=True)
    dc = dt.add_parser("check", help="verify dataset files against MD5SUMS")
    dc.add_argument("--root", type=_nonempty, help="data folder (default $ANALOGEBL_DATA)")
    dc.set_defaults(fn=_data_check)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except AnalogeblError as exc:
        print(f"analogebl: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("analogebl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `analogebl ... | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
        return 141


if __name__ == "__main__":
    sys.exit(main())
