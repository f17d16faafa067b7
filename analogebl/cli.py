"""Command-line interface: ``analogebl study|profile|check|data ...`` (also ``python -m
analogebl``; ``analogebl --version`` prints the version).

Bad input (unknown study, key, flag value, missing data) prints one line naming the file
and key (or the flag) and exits with status 2; a flag value is checked by argparse when the
command line is parsed. ``study list`` and ``profile list`` list every catalog entry: an
entry that cannot be loaded is shown with its error in place of its description, the rest
are still listed, and the exit status is then 1. ``data check`` exits with status 1 when a
dataset file differs from the official one (:mod:`analogebl.data.checksums`) or from its entry
in the data folder's own ``MD5SUMS``. Bare ``analogebl`` (no command) prints the help on
standard error and exits with status 2, as a usage error.

:func:`build_parser` is public: the documentation's command reference is generated from it,
so every command and flag carries a help text written as plain prose.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from analogebl.backends import BACKENDS
from analogebl.errors import AnalogeblError
from analogebl.spec import DTYPES

__all__ = ["build_parser", "main"]


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


def _plain(text: str) -> str:
    """``text`` as plain prose on one line: whitespace runs (line breaks included) become one
    space and Markdown code quotes (backticks) are dropped."""
    return " ".join(text.replace("`", "").split())


# a possible end of a sentence: . ! or ? (and any closing brackets or quotes) followed by
# a space or the end of the text: a period inside a number ("0.25", ".5") is never one
_SENTENCE_END = re.compile(r"[.!?][)\]\"']*(?=\s|$)")
# words whose period ends no sentence ("et al. (2021)", "e.g. x", "Fig. 3"), as written
_ABBREVIATIONS = frozenset(
    "e.g. E.g. i.e. I.e. al. vs. cf. Cf. approx. ca. resp. Fig. Figs. fig. figs. Eq. Eqs. eq. eqs. "
    "No. Nos. Ref. Refs. Sec. Ch. Vol. pp. Dr. Mr. Ms. Prof. St.".split()
)


def _first_sentence(text: str) -> str:
    """The first whole sentence of ``text`` as plain prose (all of it when no sentence
    ends: a description is never cut in the middle of one).

    A sentence ends at ``.``, ``!`` or ``?`` followed by a space (whatever comes next) or
    the end of the text, except the period of an abbreviation (:data:`_ABBREVIATIONS`) or
    of an initial ("B. Scellier").
    """
    flat = _plain(text)
    for m in _SENTENCE_END.finditer(flat):
        word = flat[: m.start() + 1].rsplit(None, 1)[-1].lstrip("([\"'")
        if word in _ABBREVIATIONS or re.fullmatch(r"[A-Z]\.", word):
            continue
        return flat[: m.end()]
    return flat


def _study_list(args) -> int:
    from analogebl.catalog import load_entries
    from analogebl.study import load_study

    def summary(name: str) -> tuple[int, str]:
        s = load_study(name)
        return len(s.runs()), _first_sentence(s["description"] or "") or "(no description)"

    entries = load_entries("studies", summary)
    w = max((len(n) for n in entries), default=0)
    broken = 0
    for name, entry in entries.items():
        if isinstance(entry, AnalogeblError):
            print(f"{name:{w}s}  ERROR  {_one_line(entry)}")
            broken += 1
            continue
        n, first = entry
        print(f"{name:{w}s}  {n:3d} run{'s' if n != 1 else ' '}  {first}")
    return 1 if broken else 0


# keys of the rule and optimizer sections that only some rules / optimizers read
_EP_RULES = ("p_ep", "n_ep", "c_ep")
_MODEL_RULE_KEYS = {"h_ep": "rule.points", "d_ep": "rule.homeostasis",
                    "fn_ep": "rule.temperature"}  # fmt: skip
_ORTHOGONAL = ("muon", "smep", "local_ep", "natural_ep", "sdmep")


def _rule_keys(rule: str, circuit: bool) -> set[str]:
    """The ``rule.*`` keys the rule ``rule`` reads, on a circuit or on a recurrent model."""
    keys = {"rule.name"}
    if circuit:
        keys.add("rule.iterations")
        if rule not in ("tbp", "rbp"):
            keys.add("rule.beta")
        if rule != "rbp":  # RBP is synchronous by definition
            keys.add("rule.schedule")
        if rule in _EP_RULES:
            keys.add("rule.nudge")
    elif rule != "bptt":  # BPTT backpropagates through the free phase: no nudge
        keys |= {"rule.beta", "rule.iterations"}
        if rule in _MODEL_RULE_KEYS:
            keys.add(_MODEL_RULE_KEYS[rule])
    return keys


def _optimizer_keys(run: dict) -> set[str]:
    """The ``optimizer.*`` keys the run's optimizer reads."""
    name = run["optimizer.name"]
    keys = {f"optimizer.{k}" for k in ("name", "lr", "lr_scale", "weight_decay", "schedule",
                                       "spectral_cap")}  # fmt: skip
    if run["optimizer.schedule"] == "cosine":
        keys.add("optimizer.eta_min")
    if name == "sgd":
        keys.add("optimizer.momentum")
    if name in _ORTHOGONAL:
        keys |= {f"optimizer.{k}" for k in ("momentum", "nesterov", "ns_steps", "adam_lr")}
    if name == "sdmep":
        keys |= {"optimizer.rank_frac", "optimizer.dion_threshold"}
    if name == "natural_ep":
        keys |= {"optimizer.damping", "optimizer.kfac_decay"}
    return keys


def _applies(run: dict) -> set[str]:
    """The keys of one resolved run (flat dotted keys) that change what it does: no
    ``model.*`` keys on a circuit (nor ``circuit.*`` on a model), no profile when it runs
    the ideal simulator, and only the rule and optimizer keys its rule and optimizer read."""
    circuit = run.get("model.name") is None
    out = set()
    for k, v in run.items():
        section = k.split(".", 1)[0] if "." in k else ""
        # the text, and the tier a study file picks when none is given: the output is one
        # tier's settings, so a default_tier would name a tier it no longer has
        if k in ("description", "default_tier") or (k == "measure_memory" and not v):
            continue
        if (section == "model" and circuit) or (section == "circuit" and not circuit):
            continue
        if not circuit and k in ("relaxation.schedule", "probes"):  # models relax their own way
            continue
        if k == "profile" and v in (None, "none"):
            continue
        out.add(k)
    rule_keys = _rule_keys(run["rule.name"], circuit)
    opt_keys = _optimizer_keys(run)
    return {
        k
        for k in out
        if not (k.startswith("rule.") and k not in rule_keys)
        and not (k.startswith("optimizer.") and k not in opt_keys)
    }


def _applicable_config(study, runs) -> dict:
    """The study's configuration as a nested document of only the keys that apply.

    A top-level value is kept where some run reads it (:func:`_applies`) and takes it from
    the top level (not swept, not replaced by its variant or its ``per_rule`` table); the
    required keys are kept as well, so the document still loads as a study with the same
    runs. The sweep axes follow in their order (which names the runs), then each variant
    and ``per_rule`` table with only the keys its runs read.
    """
    from analogebl.study.schema import REQUIRED
    from analogebl.tomlio import nest

    per_rule, variants = dict(study.per_rule), dict(study.variants)
    swept = {k for k, _ in study.sweep}
    top, by_rule, by_variant = set(), {}, {}
    for run in runs:
        values = run.as_dict()
        used = _applies(values)
        rule, variant = values["rule.name"], values.get("variant")
        replaced = (
            swept
            | set(dict(per_rule.get(rule, ())))
            | set(dict(variants.get(variant, ())) if variant is not None else ())
        )
        top |= used - replaced
        by_rule.setdefault(rule, set()).update(used)
        if variant is not None:
            by_variant.setdefault(variant, set()).update(used)
    values = dict(study.values)
    top |= {k for k in REQUIRED if k not in swept}  # the output still loads as a study
    doc = nest((k, values[k]) for k in sorted(top) if values[k] is not None)
    if study.sweep:
        # flat dotted keys, in the study's order: the order of the axes names the runs
        doc["sweep"] = {k: list(v) for k, v in study.sweep}
    tables = {
        name: nest((k, v) for k, v in table if k in by_variant.get(name, ()))
        for name, table in study.variants
        if name in by_variant
    }
    if tables:
        doc["variants"] = tables
    tables = {
        rule: nest((k, v) for k, v in table if k in by_rule[rule])
        for rule, table in study.per_rule
        if rule in by_rule
    }
    tables = {r: t for r, t in tables.items() if t}
    if tables:
        doc["per_rule"] = tables
    return doc


def _wrap(text: str, width: int = 88) -> list[str]:
    """``text`` as plain prose wrapped to ``width`` columns (paragraphs at blank lines)."""
    import textwrap

    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if out:
            out.append("")
        out += textwrap.wrap(_plain(para), width, break_on_hyphens=False) or [""]
    return out


def _study_show(args) -> int:
    from analogebl.study import load_study
    from analogebl.tomlio import dumps

    study = load_study(args.name, args.tier)
    runs = study.runs()
    n = len(runs)
    # every line of text is a TOML comment: the output still parses as the study's settings
    print(f"# study {study.name}, tier {study.tier}: {n} run{'s' if n != 1 else ''}")
    print(f"# file: {study.path}")
    print("#")
    for line in _wrap(study["description"] or "(no description)"):
        print(f"# {line}".rstrip())
    print("#")
    print("# The settings that apply to this study's runs (defaults included; keys that no run")
    print("# reads, such as another optimizer's, are left out). Saved as FILE.toml, this output")
    print("# is a study of its own with the same runs: analogebl study run FILE.toml")
    print()
    print(dumps(_applicable_config(study, runs)), end="")
    if study.claims:  # TOML comments: the output still parses as the resolved study
        print("\n# claims (tested by analogebl study report over seeds; not run values):")
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

    entries = load_entries("hardware_profiles", load_profile)
    w = max((len(n) for n in entries), default=0)
    broken = 0
    for name, prof in entries.items():
        if isinstance(prof, AnalogeblError):
            print(f"{name:{w}s}  ERROR  {_one_line(prof)}")
            broken += 1
        else:
            print(f"{name:{w}s}  {_first_line(prof.description)}")
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
    from analogebl import __version__
    from analogebl.data import data_root
    from analogebl.data.checksums import OFFICIAL_DATASETS, USER_LIST, check_datasets

    root = data_root(args.root)
    w = max(len(n) for n in [*OFFICIAL_DATASETS, USER_LIST])
    counts = {"ok": 0, "BAD": 0, "absent": 0}
    bad = False
    listed = ""  # the user's list in the summary: its result counts toward the exit status
    results = check_datasets(root)  # a malformed MD5SUMS is refused here, before any output
    print(f"data folder {root} (official checksums shipped with analogebl {__version__})")
    for res in results:
        bad |= res.status == "BAD"
        if res.name == USER_LIST:  # the user's list: every file it adds, ok or not
            print(f"{res.name:{w}s}  {res.status:6s}  {res.summary}")
            for f in res.files:
                why = f": {f.detail}" if f.detail else ""
                print(f"{res.name:{w}s}  {f.status:6s}  {f.path}{why}")
            n = len(res.bad)
            listed = f"; {res.name}: " + (f"{n} file{'s' if n != 1 else ''} BAD" if n else "ok")
            continue
        counts[res.status] += 1
        if res.status != "BAD":
            print(f"{res.name:{w}s}  {res.status:6s}  {res.summary}")
            continue
        for f in res.bad:
            print(f"{res.name:{w}s}  BAD     {f.path}: {f.detail}")
        n = len(res.bad)
        are, differ, them = ("is", "differs", "it") if n == 1 else ("are", "differ", "them")
        print(f"{res.name:{w}s}  BAD     {n} of {len(res.files)} files {are} missing or "
              f"{differ} from the official release; to replace {them}: {res.summary}")  # fmt: skip
    print(f"summary: {counts['ok']} ok, {counts['BAD']} BAD, {counts['absent']} absent{listed}")
    if counts["absent"] == len(OFFICIAL_DATASETS):
        print(f"no dataset found in {root}: is it the data folder ($ANALOGEBL_DATA or --root)?")
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


class _HelpFormatter(argparse.HelpFormatter):
    """Help text for a terminal of any width: descriptions and epilogs are paragraphs
    (separated by blank lines) wrapped to the terminal, except a paragraph with indented
    lines (examples), which keeps its lines as written; the help column is a little wider
    than argparse's default, and long subcommand names are measured with their indent."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 30,
                 width: int | None = None):  # fmt: skip
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out = []
        for para in text.strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line[:1].isspace() for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_on_hyphens=False,
                    )
                )
        return "\n\n".join(out)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):  # argparse leaves out their indent
            longest = max(len(name) for name in action.choices)
            self._action_max_length = max(
                self._action_max_length,
                longest + self._current_indent + 2 * self._indent_increment,
            )


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


_DESCRIPTION = """\
Simulate analog energy-based circuits (Hopfield networks built as resistive crossbars) and
train them with energy-based learning rules (EP, CpL, CL) or the backprop baselines.

A first session:
  analogebl study list                  the catalog of studies, one line each
  analogebl study show mnist_dhn_c_ep   what one study runs
  analogebl data check                  are the dataset files intact?
  analogebl study run mnist_dhn_c_ep    train it, evaluate it, write its report"""

_EPILOG = """\
Each command has its own help: analogebl study --help, analogebl study run --help. Datasets
are read from the folder named by $ANALOGEBL_DATA; nothing is downloaded.

Exit status: 0 success; 1 a check found a bad file or a catalog entry cannot be loaded; 2 bad
input (the message names the file and key, or the flag), or no command given (the help is
printed); 130 interrupted.

The documentation (user guide, how-tos, command and API reference) is the docs
folder of the source distribution or repository; to build it there:
  pip install 'analogebl[docs]'
  python -m sphinx -b html docs docs/_build/html   (open docs/_build/html/index.html)"""

_TIER_HELP = (
    "the tier: full (the paper's configuration), cpu (sized for a few CPU cores), smoke "
    "(seconds, for tests), or a tier the study declares in extra_tiers (default: the "
    "study's default_tier)"
)
_STUDY_NAME_HELP = (
    "a study of the catalog (see analogebl study list), or the path of a study file ending in .toml"
)


def _add(sub, name: str, summary: str, description: str | None = None,
         epilog: str | None = None) -> argparse.ArgumentParser:  # fmt: skip
    """A subcommand: ``summary`` is its line in the parent's help, ``description`` (default:
    the summary as a sentence) opens its own help."""
    if description is None:
        description = summary[0].upper() + summary[1:] + "."
    return sub.add_parser(name, help=summary, description=description,
                          epilog=epilog, formatter_class=_HelpFormatter)  # fmt: skip


def _commands(p: argparse.ArgumentParser, dest: str, what: str):
    """The subcommands of ``p`` (one of them is required)."""
    return p.add_subparsers(dest=dest, required=True, metavar="COMMAND", title="commands",
                            help=what)  # fmt: skip


def _study_parsers(st) -> None:
    _add(
        st,
        "list",
        "list the catalog's studies: name, number of runs, first sentence of the description",
        epilog="A study file that cannot be loaded is listed with its error instead of its "
        "description; the others are still listed and the exit status is 1.",
    ).set_defaults(fn=_study_list)

    sh = _add(
        st,
        "show",
        "print a study's description and the settings its runs use",
        "Print a study's description and the settings that apply to its runs, for one tier: "
        "defaults included, keys no run reads (another optimizer's, a recurrent model's on a "
        "circuit) left out, then its sweep axes, per-rule and variant tables and claims. The "
        "text lines are TOML comments, so the output parses as TOML: saved as a file, it is "
        "a study of its own with the same runs (analogebl study run FILE.toml).",
        epilog="Example:\n"
        "  analogebl study show seven_rules_mnist --tier cpu > mine.toml\n"
        "  analogebl study run mine.toml --out runs/mine",
    )
    sh.add_argument("name", type=_nonempty, metavar="NAME", help=_STUDY_NAME_HELP)
    sh.add_argument("--tier", type=_nonempty, help=_TIER_HELP)
    sh.set_defaults(fn=_study_show)

    run = _add(
        st,
        "run",
        "train and evaluate every run of a study, then write its report",
        "Train and evaluate every run of a study's sweep, one HDF5 run file per run under "
        "the output folder, with a progress bar and one line per epoch, then write the "
        "report. Rerunning on the same folder resumes: complete runs are skipped, an "
        "interrupted one continues from its last checkpoint.",
        epilog="Examples:\n"
        "  analogebl study run mnist_dhn_c_ep\n"
        "  analogebl study run seven_rules_mnist --tier cpu --executor local:2\n"
        "  analogebl study run c_ep_cifar10 --tier smoke --set epochs=2 --seeds 0-2\n\n"
        "Exit status: 0 when every run completed, 2 on bad input or when a run diverged.",
    )
    run.add_argument("name", type=_nonempty, metavar="NAME", help=_STUDY_NAME_HELP)
    run.add_argument("--tier", type=_nonempty, help=_TIER_HELP)
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a study key in every run, the value in TOML syntax (a bare word is a "
        "string); repeat for more keys, e.g. --set epochs=3 --set circuit.width=0.25. "
        "Overrides win over variants, not over per-rule settings",
    )
    run.add_argument(
        "--backend",
        choices=BACKENDS,
        help="compute backend (default: the study's, usually auto: torch on a GPU; on the "
        "CPU numba for dense circuits and torch for convolutional ones); reference is the "
        "slow NumPy oracle",
    )
    run.add_argument(
        "--device",
        type=_nonempty,
        help="device of the torch backend: cpu, cuda or cuda:N; none clears the study's "
        "(default: the study's, else the backend's choice)",
    )
    run.add_argument(
        "--dtype",
        choices=DTYPES,
        help="floating-point format of the relaxation (default: the study's, usually "
        f"float32); {_DTYPE_HELP}",
    )
    run.add_argument(
        "--seed",
        type=_integer(0, MAX_SEED),
        metavar="N",
        help="run this one seed, replacing the study's seed sweep (a non-negative integer "
        "below 2^63)",
    )
    run.add_argument(
        "--seeds",
        metavar="LIST",
        help="sweep over these seeds: a list such as 0,1,2 or an inclusive range such as "
        f"0-4 (distinct seeds, at most {MAX_SEEDS:,})",
    )
    run.add_argument(
        "--profile",
        type=_nonempty,
        metavar="NAME",
        help="hardware profile of every run (see analogebl profile list), or the path of a "
        "profile file; none runs the ideal simulator (default: the study's)",
    )
    run.add_argument(
        "--epochs",
        type=_integer(1),
        metavar="N",
        help="training epochs of every run (default: the study's)",
    )
    run.add_argument(
        "--threads",
        type=_threads,
        metavar="N",
        help="threads per run: a count, or auto: the cores not busy with other work when "
        "the run starts, split among the workers (default: the study's, usually auto; "
        "$ANALOGEBL_THREADS replaces auto)",
    )
    run.add_argument(
        "--out",
        type=_nonempty,
        metavar="DIR",
        help="folder of the run files and the report (default: runs/STUDY-TIER); a folder "
        "holding runs of the same study is resumed",
    )
    run.add_argument(
        "--executor",
        default="local",
        metavar="WHERE",
        help="where the runs execute: local (the default: one after another in this "
        "process), local:N (N worker processes), or dask://HOST:PORT (a Dask scheduler)",
    )
    run.add_argument(
        "--checkpoint-seconds",
        type=_non_negative,
        dest="checkpoint_seconds",
        metavar="S",
        help="seconds between checkpoints inside an epoch, 0 for every step (default: the "
        "study's checkpoint_minutes, 10 minutes unless set)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary line (study, tier, output folder, runs, report files) "
        "on standard output when the runs end, and nothing else there; no progress bar and "
        "no per-run or per-epoch lines are shown: standard error gets only the opening lines "
        "(what runs and where) and warnings",
    )
    run.set_defaults(fn=_study_run)

    rp = _add(
        st,
        "report",
        "write tables and figures from the run files of a study's output folder",
        "Write tables (Markdown, CSV, LaTeX) and figures from the HDF5 run files under DIR "
        "only, and test the study's claims over seeds. Runs of different tiers, epochs, "
        "data sizes or configurations are never pooled; smoke tiers are marked as not "
        "a result.",
    )
    rp.add_argument(
        "dir",
        type=_nonempty,
        metavar="DIR",
        help="the folder of a study's run files (the --out folder of analogebl study run)",
    )
    rp.add_argument(
        "--out", type=_nonempty, metavar="DIR", help="folder of the report (default: DIR/report)"
    )
    rp.set_defaults(fn=_study_report)


def _profile_parsers(pr) -> None:
    _add(
        pr,
        "list",
        "list the catalog's hardware profiles, one line each",
        epilog="A profile file that cannot be loaded is listed with its error instead of "
        "its description; the others are still listed and the exit status is 1.",
    ).set_defaults(fn=_profile_list)
    ps = _add(
        pr,
        "show",
        "print every field of a hardware profile with its unit and source",
        "Print a hardware profile: its description, file, references, and every field "
        "with its value, SI unit and cited source (inherited fields included).",
    )
    ps.add_argument(
        "name",
        type=_nonempty,
        metavar="NAME",
        help="a profile of the catalog (see analogebl profile list), or the path of a "
        "profile file ending in .toml",
    )
    ps.set_defaults(fn=_profile_show)


def _check_parsers(ck) -> None:
    g = _add(
        ck,
        "gradients",
        "compare each learning rule's update with the exact gradient",
        "Compare each learning rule's weight update with the exact gradient of the loss "
        "(implicit differentiation at the free equilibrium) on one random batch: relative "
        "error and cosine per nudge strength beta, and the fitted log-log slope of the "
        "error (about 1 for P-EP and N-EP, about 2 for C-EP). The backprop baselines are "
        "swept over their iteration counts instead.",
        epilog="Examples:\n"
        "  analogebl check gradients\n"
        "  analogebl check gradients --circuit tiny_conv --rules c_ep,p_ep --json\n"
        "  analogebl check gradients --model looped_mlp",
    )
    g.add_argument(
        "--circuit",
        type=_nonempty,
        default="tiny_dense",
        metavar="NAME",
        help="catalog circuit to check (default: tiny_dense; tiny_conv is a convolutional one)",
    )
    g.add_argument(
        "--model",
        type=_nonempty,
        metavar="NAME",
        help="check a recurrent model instead of a circuit: looped_mlp, toroidal_mlp or "
        "modern_eqprop (torch, float64; --circuit, --width, --backend and --dtype do not "
        "apply)",
    )
    g.add_argument(
        "--rules",
        type=_names,
        metavar="LIST",
        help="comma-separated rules to check (default: every rule of the circuit, or of "
        "the model with --model)",
    )
    g.add_argument(
        "--width",
        type=_positive,
        metavar="W",
        help="channel-width multiplier of the circuit, a number > 0 (default: the circuit file's)",
    )
    g.add_argument(
        "--backend",
        default="reference",
        choices=BACKENDS[1:],
        help="backend that relaxes the circuit (default: reference, the NumPy oracle)",
    )
    g.add_argument(
        "--dtype",
        default="float64",
        choices=DTYPES,
        help=f"floating-point format (default: float64); {_DTYPE_HELP}",
    )
    g.add_argument(
        "--seed",
        type=_integer(0, MAX_SEED),
        default=1,
        metavar="N",
        help="seed of the weights and of the random batch (default: 1)",
    )
    g.add_argument(
        "--batch",
        type=_integer(1),
        default=1,
        metavar="N",
        help="examples in the random batch; gradients are batch means (default: 1)",
    )
    g.add_argument(
        "--iterations",
        type=_integer(1),
        default=2000,
        metavar="N",
        help="most iterations of the free phase (it stops at equilibrium) and iterations of "
        "each nudged phase (default: 2000)",
    )
    g.add_argument(
        "--betas",
        type=_betas,
        metavar="LIST",
        help="comma-separated nudge strengths beta > 0 (default: 5 values spaced "
        "logarithmically from 0.001 to 0.1)",
    )
    g.add_argument(
        "--json", action="store_true", help="print the result as one JSON object, not a table"
    )
    g.set_defaults(fn=_check_gradients)


def _data_parsers(dt) -> None:
    dc = _add(
        dt,
        "check",
        "check the dataset files against the official checksums",
        "Check the dataset files in the data folder against the official checksums "
        "shipped with analogebl. Each dataset is reported as ok, BAD (which file, and "
        "why) or absent (with where to download it). CIFAR-100 has a published MD5 for "
        "its archive only: its extracted files are checked by size, record count and "
        "label range. A checksum list named MD5SUMS in the data folder is checked too, "
        "in addition to the official checksums.",
        epilog="Exit status: 0 when every file present is intact (absent datasets are not "
        "an error), 1 when a file is not (an official one, or one listed in MD5SUMS), 2 when "
        "the data folder does not exist or its MD5SUMS is malformed.",
    )
    dc.add_argument(
        "--root",
        type=_nonempty,
        metavar="DIR",
        help="the data folder (default: $ANALOGEBL_DATA)",
    )
    dc.set_defaults(fn=_data_check)


def build_parser() -> argparse.ArgumentParser:
    """The ``analogebl`` argument parser.

    Every flag value is checked when the command line is parsed (a bad one is a one-line
    usage error, exit status 2); each subcommand sets ``fn``, the function that runs it.
    The documentation's command reference is generated from this parser, so every command
    and flag carries a help text.

    Returns
    -------
    argparse.ArgumentParser
        The parser of ``analogebl [--version] COMMAND ...``.
    """
    from analogebl import __version__

    p = _Parser(prog="analogebl", description=_DESCRIPTION, epilog=_EPILOG,
                formatter_class=_HelpFormatter)  # fmt: skip
    p.add_argument(
        "--version",
        action="version",
        version=f"analogebl {__version__}",
        help="print the version (analogebl X.Y.Z) and exit",
    )
    sub = _commands(p, "command", "what to do")
    _study_parsers(
        _commands(
            _add(sub, "study", "list, show, run and report studies (named experiments)",
                 "Studies are named experiments (studies/NAME.toml): a configuration with "
                 "full, cpu and smoke tiers, sweep axes and claims tested over seeds."),
            "sub",
            "what to do with studies",
        )
    )  # fmt: skip
    _profile_parsers(
        _commands(
            _add(sub, "profile", "list and show hardware profiles",
                 "Hardware profiles (hardware_profiles/NAME.toml) describe the devices, "
                 "converters, tiles and wires a circuit's couplings are made of, every "
                 "field with its SI unit and cited source."),
            "sub",
            "what to do with hardware profiles",
        )
    )  # fmt: skip
    _check_parsers(
        _commands(
            _add(sub, "check", "diagnostics: each learning rule against the exact gradient"),
            "sub",
            "which check to run",
        )
    )
    _data_parsers(
        _commands(
            _add(sub, "data", "check the dataset files",
                 "The datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100, SVHN) are read "
                 "in their official formats from the folder named by $ANALOGEBL_DATA; "
                 "nothing is downloaded."),
            "sub",
            "what to do with the datasets",
        )
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # bare analogebl: nothing was done
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
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
