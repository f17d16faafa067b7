"""A hardware profile of your own, and two learning rules trained on it.

1. writes a hardware profile as a TOML file, the way a user describes a device (here a
   made-up ReRAM-like device: 64 soft-bounded conductance levels, cycle-to-cycle noise,
   device-to-device spread, 8-bit converters), and loads it to check it;
2. trains the dense Hopfield network 784-512-10 on a small MNIST subset under two rules
   (default: centered and positive EP), with every weight a differential pair of
   those devices and every update applied as pulses;
3. prints a table of the test error per epoch and saves a comparison plot.

A profile is found by name in the catalog (``hardware_profiles/NAME.toml`` in the current
folder, on ``$ANALOGEBL_PATH`` or shipped with the package) or, as here, by a path ending in
``.toml``; the same file works on the command line::

    analogebl study run mnist_dhn_c_ep --profile OUT/my_reram.toml

Run it from any folder::

    ANALOGEBL_DATA=/path/to/data python custom_profile_two_rules.py [--fast] [--out DIR]

It writes ``my_reram.toml`` and ``comparison.png`` into ``--out`` (default
``./analogebl_examples/custom_profile``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import analogebl as ae
from analogebl.hardware import load_profile
from analogebl.hardware.schema import SCHEMA
from analogebl.learning.rules import rule_label
from analogebl.pipeline import run_training
from analogebl.study import load_study

# The profile, as a user writes it. Every field is described by `analogebl profile show
# reram_like` (units in the key names: _S siemens, _V volts, _sec seconds, _J joules); a
# field left out keeps the value of the profile named by `extends`, and `ideal_fp32`, the
# software simulator, has every effect off.
PROFILE_TOML = """\
[profile]
name = "my_reram"
extends = "ideal_fp32"
description = "A made-up ReRAM-like device: 64 soft-bounded levels, noisy pulses, 8-bit converters."
references = ["examples/custom_profile_two_rules.py (an illustration, not a measured device)"]

[conductance]
mapping = "differential"   # W = (G+ - G-) / g_unit on a pair of devices
g_min_S = 1.0e-6
g_max_S = 1.0e-5

[update]
model = "soft_bounds"      # steps shrink as a device approaches its bound
n_states = 64              # nominal pulses from g_min to g_max
rounding = "stochastic"    # pulse counts rounded up or down at random (unbiased)
max_pulses = 31            # at most 31 pulses per device per update

[variability]
c2c_std = 0.1              # cycle-to-cycle noise of each pulse (multiplicative)
dtod_step_std = 0.1        # device-to-device spread of the step size

[dac]
bits = 8                   # input DAC
v_min_V = 0.0
v_max_V = 0.5

[adc]
bits = 8                   # node read-out ADC
v_min_V = 0.0
v_max_V = 0.5

[neuron]
v_high_V = 0.5             # the diode clamp of state 1

[energy]
v_read_V = 0.5
t_read_sec = 10e-9         # settling time of one relaxation iteration
v_write_up_V = 1.5
v_write_down_V = 1.5
t_write_up_sec = 50e-9
t_write_down_sec = 50e-9
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("ANALOGEBL_EXAMPLES_FAST") == "1",
        help="tiny settings that finish in seconds (also: ANALOGEBL_EXAMPLES_FAST=1)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("analogebl_examples") / "custom_profile",
        help="folder for the profile and the plot (default: %(default)s)",
    )
    p.add_argument(
        "--rules",
        default="c_ep,p_ep",
        help="two (or more) comma-separated rules: cl, p_ep, n_ep, c_ep, p_cpl, n_cpl, "
        "c_cpl, tbp, rbp (default: %(default)s)",
    )
    p.add_argument(
        "--backend",
        default=None,
        help="reference, numba, torch or auto (default: auto; reference with --fast)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    # the fast settings are for the test suite; the others take about 30 s on 2 cores
    n_train, n_test, epochs, batch = (400, 200, 2, 32) if args.fast else (5000, 2000, 5, 128)
    backend = args.backend or ("reference" if args.fast else "auto")
    args.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ 1. the profile
    path = args.out / "my_reram.toml"
    path.write_text(PROFILE_TOML, encoding="utf-8")
    profile = load_profile(str(path))  # validates every field (a typo names file and key)
    print(f"profile {profile.name} ({path}):\n  {profile.description}")
    print("  fields that differ from the ideal simulator:")
    for table, key, value, unit in (
        (t, k, v, SCHEMA[t][k][2]) for (t, k), v in profile.values if v != SCHEMA[t][k][1]
    ):
        print(f"    {table}.{key} = {value} {unit}".rstrip())

    # ------------------------------------------------------------------ 2. train
    # A study from the catalog is the recipe: mnist_dhn_c_ep is C-EP on the 784-512-10
    # network (SGD with momentum, per-layer rates, cosine schedule). Its smoke tier with a
    # few overrides, the same keys as `--set key=value` on the command line, is each run.
    results = {}
    for rule in rules:
        overrides = [
            ("rule.name", rule),
            ("profile", str(path.resolve())),
            ("epochs", epochs),
            ("train_subset", n_train),
            ("test_subset", n_test),
            ("batch_size", batch),
            ("backend", backend),
            ("probes", 0),  # no per-epoch gradient-fidelity probes: not needed here
        ]
        study = load_study("mnist_dhn_c_ep", "smoke", overrides)
        print(f"\ntraining {rule_label(rule)} on {n_train} MNIST images under {profile.name}")
        t0 = time.perf_counter()
        # path=None: nothing recorded (give a path to record an HDF5 run file and resume)
        res = run_training(study, log=lambda line: print("  " + line), progress=False)
        results[rule] = [e.test_error for e in res.epochs]
        print(f"  done in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ 3. table and plot
    labels = [rule_label(r) for r in rules]
    print(f"\ntest error (%) per epoch, {n_train} training / {n_test} test images, {profile.name}")
    print("epoch  " + "  ".join(f"{lab:>7s}" for lab in labels))
    for e in range(epochs):
        print(f"{e + 1:5d}  " + "  ".join(f"{100 * results[r][e]:7.2f}" for r in rules))

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for rule, label in zip(rules, labels, strict=True):
        errors = results[rule]
        ax.plot(range(1, len(errors) + 1), [100 * v for v in errors], "o-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"784-512-10 on MNIST ({n_train} images), profile {profile.name}", fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = args.out / "comparison.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    print(f"\nplot: {png}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ae.AnalogeblError as exc:  # missing data, a bad profile field: a message only
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
