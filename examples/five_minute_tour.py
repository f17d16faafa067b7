"""The five-minute tour of analogebl, as a script.

What it does, in order:

1. builds the dense Hopfield network 784-512-10 (``dhn_mnist``) from the circuit catalog;
2. relaxes it to equilibrium on a batch of real MNIST images;
3. estimates the loss gradient with centered equilibrium propagation (C-EP) and compares
   it with the exact gradient from implicit differentiation (cosine and norm ratio), next
   to the one-sided P-EP and N-EP estimates;
4. trains the network with C-EP for a few epochs on a small MNIST subset and prints the
   test error;
5. loads a hardware profile and shows one of its effects: the trained weights programmed
   onto device pairs whose step size and bounds vary from device to device.

Run it from any folder once the package is installed (``pip install .``)::

    ANALOGEBL_DATA=/path/to/data python five_minute_tour.py          # about 15 s on 2 cores
    ANALOGEBL_DATA=/path/to/data python five_minute_tour.py --fast   # a few seconds

``$ANALOGEBL_DATA`` is the folder holding ``mnist/`` (the official idx ``.gz`` files);
nothing is downloaded. The tour writes no files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import analogebl as ae
from analogebl.catalog import list_entries
from analogebl.data import iterate_batches, load_dataset
from analogebl.diagnostics.gradcheck import compare
from analogebl.hardware import load_profile
from analogebl.hardware.schema import SCHEMA
from analogebl.learning import SGD, make_rule
from analogebl.learning.rules import rule_label
from analogebl.training import CrossbarUpdater, IdealUpdater, evaluate


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("ANALOGEBL_EXAMPLES_FAST") == "1",
        help="tiny settings that finish in seconds (also: ANALOGEBL_EXAMPLES_FAST=1)",
    )
    p.add_argument(
        "--backend",
        default="reference",
        help="reference (the NumPy oracle, default), numba, torch or auto",
    )
    return p.parse_args(argv)


def norm_ratio(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """||a|| / ||b|| over all parameters."""
    na = np.sqrt(sum(float(np.sum(a[k] ** 2)) for k in a))
    nb = np.sqrt(sum(float(np.sum(b[k] ** 2)) for k in a))
    return na / nb


def main(argv=None) -> int:
    args = parse_args(argv)
    # sizes: the fast settings are for the test suite; the others take about 15 s on two CPU
    # cores
    n_train, n_test, epochs = (600, 300, 2) if args.fast else (6000, 2000, 2)
    t_start = time.perf_counter()
    print(f"analogebl {ae.__version__}  ({'fast' if args.fast else 'normal'} settings)")

    # ------------------------------------------------------------------ 1. a circuit
    # The catalogs (circuits/, studies/, hardware_profiles/) ship with the package; a TOML
    # file of the same name in ./circuits (or a folder on $ANALOGEBL_PATH) overrides them.
    print("\n1. Circuit catalog:", ", ".join(list_entries("circuits")))
    net = ae.Network.from_catalog("dhn_mnist", backend=args.backend, dtype="float64", seed=0)
    print(f"   {net}")
    shapes = {k: v.shape for k, v in net.parameters().items()}
    print(f"   parameters: {shapes}")

    # ------------------------------------------------------------------ 2. relax
    # Real MNIST images, normalized the way training does it (uint8 -> (x/255 - mean)/std).
    ds = load_dataset("mnist", train_subset=n_train, test_subset=n_test, subset_seed=0)
    x, y = next(
        iterate_batches(
            ds.train_x, ds.train_y, 32, rng=None, mean=ds.mean, std=ds.std, dtype=np.float64
        )
    )
    print(f"\n2. Relaxation of {len(y)} MNIST images (even/odd asynchronous layer updates)")
    ref = net.relax(x, iterations=200)  # well past equilibrium: the yardstick
    for it in (1, 2, 5, 60):
        s = net.relax(x, iterations=it)
        gap = max(float(np.max(np.abs(s[k] - ref[k]))) for k in s)
        print(f"   {it:3d} iteration{'s' if it > 1 else ' '}: max |s - s_200| = {gap:.1e}")
    states = net.relax(x, iterations=60)  # layer name -> array, the input included
    h = states["h1"]
    print(
        f"   mean energy at equilibrium {net.energy(states).mean():.3f} (0 at the zero state); "
        f"hidden units at a diode clamp (0 or 1): {np.mean((h <= 0) | (h >= 1)):.0%}"
    )

    # ------------------------------------------------------------------ 3. gradients
    # Every rule returns the batch-mean estimate of dLoss/dtheta (same sign as the gradient);
    # implicit differentiation at the free equilibrium gives the exact one.
    print("\n3. Gradient estimates vs the implicit (exact) gradient, beta = 0.25")
    exact = net.implicit_gradient(x, y)
    for rule in ("p_ep", "n_ep", "c_ep"):
        grads = net.estimate_gradient(x, y, rule=rule, beta=0.25)
        print(
            f"   {rule_label(rule):5s} cosine {compare(grads, exact)[1]:.4f}   "
            f"norm ratio {norm_ratio(grads, exact):.3f}"
        )
    print(
        f"   cosine(C-EP, implicit) = {compare(grads, exact)[1]:.4f}  "
        "(P-EP and N-EP err by O(beta) in size, C-EP by O(beta^2))"
    )

    # ------------------------------------------------------------------ 4. train
    # The flow `analogebl study run` automates: rule + optimizer + updater, one
    # Network.train_step per batch (a warm-started free phase, the rule's two nudged
    # phases, the update), the test error after each epoch. float32 is plenty for training.
    print(f"\n4. Training with C-EP on {n_train} MNIST images, test on {n_test}")
    rule = make_rule("c_ep", beta=0.25, iterations=15)
    # per-layer learning rates, as the mnist_dhn_c_ep study: 0.1 for W1/b1, 0.05 for W2/b2
    lrs = {k: (0.1 if k.endswith("1") else 0.05) for k in net.parameters()}

    def test_error(network) -> float:
        return evaluate(
            network, ds.test_x, ds.test_y, mean=ds.mean, std=ds.std, pad_to=None,
            iterations=60, batch_size=500, dtype=np.float32,
        )  # fmt: skip

    def train(network, updater) -> float:
        """``epochs`` epochs of C-EP with ``updater``; returns the final test error."""
        rng = np.random.default_rng(0)  # shuffles the training set each epoch
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            wrong = []
            for xb, yb in iterate_batches(
                ds.train_x, ds.train_y, 32, rng=rng, mean=ds.mean, std=ds.std,
                dtype=np.float32,
            ):  # fmt: skip
                metrics = network.train_step(xb, yb, rule, updater, free_iterations=60)
                wrong.append(metrics["error"])  # the batch's error before its update
            err = test_error(network)
            print(
                f"   epoch {epoch}: train error {np.mean(wrong):6.2%}  test error {err:6.2%}  "
                f"({time.perf_counter() - t0:.1f} s)"
            )
        return err

    model = ae.Network.from_catalog("dhn_mnist", backend=args.backend, dtype="float32", seed=0)
    print(f"   before training: test error {test_error(model):6.2%}")
    # IdealUpdater: software, the optimizer writes the weights
    err = train(model, IdealUpdater(SGD(lrs, momentum=0.9)))
    print(f"   final test error: {err:.2%}")

    # ------------------------------------------------------------------ 5. hardware
    # A profile is a TOML file of device and converter physics (SI units in the key names,
    # every number cited). `only_device_spread` is reram_like's 128 conductance levels plus
    # its device-to-device spread of step size, up/down bias and bounds.
    print("\n5. Hardware profile: weights on differential pairs of ReRAM-like devices")
    profile = load_profile("only_device_spread")
    print(f"   {profile.name}: {profile.description}")
    for (table, key), value in profile.values:
        if value != SCHEMA[table][key][1]:  # the fields that differ from the ideal default
            print(f"     {table}.{key} = {value} {SCHEMA[table][key][2]}".rstrip())

    def on_devices(params=None):
        """The circuit with ``profile`` compiled into its plan and its weights (``params``,
        else the initial ones) programmed onto device pairs ``W = (G+ - G-)/g_unit``; the
        CrossbarUpdater turns every later update into pulses."""
        hw = ae.Network.from_catalog(
            "dhn_mnist", backend=args.backend, dtype="float32", seed=0, profile=profile,
            data_stats=(ds.mean, ds.std),
        )  # fmt: skip
        if params is not None:
            hw.load_parameters(params)
        return hw, CrossbarUpdater(hw.backend, SGD(lrs, momentum=0.9), seed=0)

    # (a) program the software-trained weights and read them back: each device's own step
    #     size and bounds are invisible to the programming, so the weights come out wrong
    trained = model.parameters()
    hw, _ = on_devices(trained)
    w = hw.parameters()
    rel = np.sqrt(
        sum(float(np.sum((w[k] - trained[k]) ** 2)) for k in trained)
        / sum(float(np.sum(trained[k] ** 2)) for k in trained)
    )
    blind = test_error(hw)
    print(f"   (a) software-trained weights programmed once: weight error {rel:.0%} "
          f"(||W_read - W|| / ||W||), test error {err:.2%} -> {blind:.2%}")  # fmt: skip
    # (b) train on the devices from the start: every update becomes pulses, and the rule
    #     sees the weights the devices really hold
    print("   (b) trained on the devices (C-EP, updates as pulses):")
    hw, updater = on_devices()
    on_device = train(hw, updater)
    print(f"   test error: software {err:.2%}, programmed once {blind:.2%}, "
          f"trained on the devices {on_device:.2%}")  # fmt: skip
    print(f"\nDone in {time.perf_counter() - t_start:.1f} s.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ae.AnalogeblError as exc:  # missing data, bad settings: a message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
