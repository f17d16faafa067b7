"""Load circuits from the ``circuits/`` catalog (TOML).

File format (all keys validated, unknown keys rejected)::

    description = "..."
    [input]
    channels = 3          # default for in_channels; with `size` -> (C, H, W) input
    size = [32, 32]       # or: features = 784  -> (784,) input
    [defaults]
    num_classes = 10
    width = 1.0           # multiplies every hidden channel/unit count
    bias_gain = 0.5
    [[hidden]]            # one table per hidden layer, bottom to top
    coupling = "conv"     # or "dense"
    channels = 128        # conv; `units = 512` for dense
    pool = "max"          # conv only: max | avg | none
    gain = 0.5
    [output]
    gain = 0.5            # dense coupling into the linear output layer (num_classes units)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analogebl.catalog import find_entry, read_toml
from analogebl.circuit.description import (
    Activation,
    Circuit,
    Coupling,
    CouplingKind,
    Layer,
    Pool,
)
from analogebl.errors import ConfigError

__all__ = ["load_circuit", "circuit_from_dict"]

_TOP = {"description", "input", "defaults", "hidden", "output"}
_INPUT = {"channels", "size", "features"}
_DEFAULTS = {"num_classes", "width", "bias_gain"}
_HIDDEN = {"coupling", "channels", "units", "pool", "gain", "kernel_size", "padding"}
_OUTPUT = {"gain"}


def _check_keys(table: dict, allowed: set[str], path, prefix: str) -> None:
    for k in table:
        if k not in allowed:
            raise ConfigError(
                f"unknown key; allowed: {', '.join(sorted(allowed))}", path=path, key=prefix + k
            )


def _positive_int(value: Any, path, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be a positive integer, got {value!r}", path=path, key=key)
    return value


def _positive_float(value: Any, path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"must be a positive number, got {value!r}", path=path, key=key)
    return float(value)


def circuit_from_dict(
    doc: dict[str, Any],
    name: str,
    path: str | Path | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    width: float | None = None,
    gains: list[float] | None = None,
    pool: str | None = None,
    depth: int | None = None,
) -> Circuit:
    """Build a :class:`Circuit` from a parsed circuit file, applying the overrides.

    ``width`` scales hidden channel/unit counts (``max(1, round(n * width))``); ``gains``
    replaces every coupling's gain (one value per coupling, bottom to top); ``pool``
    replaces the pooling of every conv coupling; ``depth`` sets the number of hidden layers
    (the file's first ``depth`` ``[[hidden]]`` entries, the last one repeated as needed).
    """
    _check_keys(doc, _TOP, path, "")
    inp = doc.get("input", {})
    _check_keys(inp, _INPUT, path, "input.")
    defaults = doc.get("defaults", {})
    _check_keys(defaults, _DEFAULTS, path, "defaults.")
    hidden = doc.get("hidden", [])
    if depth is not None:
        depth = _positive_int(depth, path, "depth")
        if not hidden:
            raise ConfigError(
                "depth needs at least one [[hidden]] layer to repeat", path=path, key="depth"
            )
        hidden = list(hidden[:depth]) + [hidden[-1]] * max(0, depth - len(hidden))
    output = doc.get("output", {})
    _check_keys(output, _OUTPUT, path, "output.")

    if width is None:
        width = defaults.get("width", 1.0)
    width = _positive_float(width, path, "defaults.width")
    if num_classes is None:
        num_classes = defaults.get("num_classes", 10)
    num_classes = _positive_int(num_classes, path, "defaults.num_classes")
    bias_gain = _positive_float(defaults.get("bias_gain", 0.5), path, "defaults.bias_gain")

    if "features" in inp:
        if "size" in inp or "channels" in inp:
            raise ConfigError("give either features or channels+size", path=path, key="input")
        shape: tuple[int, ...] = (_positive_int(inp["features"], path, "input.features"),)
    else:
        if "size" not in inp:
            raise ConfigError(
                "missing (give size = [H, W] or features = N)", path=path, key="input.size"
            )
        size = inp["size"]
        if not (isinstance(size, list) and len(size) == 2):
            raise ConfigError("must be [H, W]", path=path, key="input.size")
        c = in_channels if in_channels is not None else inp.get("channels", 1)
        c = _positive_int(c, path, "input.channels")
        shape = (c, *(_positive_int(s, path, "input.size") for s in size))

    n_couplings = len(hidden) + 1
    if gains is not None and len(gains) != n_couplings:
        raise ConfigError(
            f"needs {n_couplings} gains (one per coupling), got {len(gains)}",
            path=path,
            key="gains",
        )

    layers = [Layer("x", shape, Activation.INPUT)]
    couplings: list[Coupling] = []
    for i, h in enumerate(hidden):
        key = f"hidden[{i}]."
        _check_keys(h, _HIDDEN, path, key)
        kind_s = h.get("coupling")
        try:
            kind = CouplingKind(kind_s)
        except ValueError:
            raise ConfigError(
                f"must be 'dense' or 'conv', got {kind_s!r}", path=path, key=key + "coupling"
            ) from None
        gain = gains[i] if gains is not None else h.get("gain", 0.5)
        gain = _positive_float(gain, path, key + "gain")
        pre = layers[-1]
        if kind is CouplingKind.CONV:
            n = _positive_int(h.get("channels"), path, key + "channels")
            n = max(1, round(n * width))
            p_s = pool if pool is not None else h.get("pool", "max")
            try:
                p = Pool(p_s)
            except ValueError:
                raise ConfigError(
                    f"must be max, avg or none, got {p_s!r}", path=path, key=key + "pool"
                ) from None
            ks = _positive_int(h.get("kernel_size", 3), path, key + "kernel_size")
            pad = h.get("padding", 1)
            if len(pre.shape) != 3:
                raise ConfigError(
                    "a conv coupling needs a (C, H, W) layer below it",
                    path=path,
                    key=key + "coupling",
                )
            hh = pre.shape[1] + 2 * pad - ks + 1
            ww = pre.shape[2] + 2 * pad - ks + 1
            if p is not Pool.NONE:
                hh, ww = hh // 2, ww // 2
            post_shape: tuple[int, ...] = (n, hh, ww)
            coupling = Coupling(f"W{i + 1}", i, kind, gain, ks, pad, p)
        else:
            for bad in ("pool", "channels", "kernel_size", "padding"):
                if bad in h:
                    raise ConfigError("not allowed for a dense coupling", path=path, key=key + bad)
            n = _positive_int(h.get("units"), path, key + "units")
            post_shape = (max(1, round(n * width)),)
            coupling = Coupling(f"W{i + 1}", i, kind, gain)
        layers.append(Layer(f"h{i + 1}", post_shape, Activation.HARD_SIGMOID))
        couplings.append(coupling)
    gain = gains[-1] if gains is not None else output.get("gain", 0.5)
    gain = _positive_float(gain, path, "output.gain")
    couplings.append(Coupling(f"W{len(hidden) + 1}", len(hidden), CouplingKind.DENSE, gain))
    layers.append(Layer("out", (num_classes,), Activation.LINEAR))
    try:
        return Circuit(
            name, tuple(layers), tuple(couplings), bias_gain, description=doc.get("description", "")
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), path=path) from None


def load_circuit(name: str, **overrides) -> Circuit:
    """Load a catalog circuit by name (or a ``.toml`` path); see :func:`circuit_from_dict`."""
    path = find_entry("circuits", name)
    return circuit_from_dict(read_toml(path), Path(path).stem, path=path, **overrides)
