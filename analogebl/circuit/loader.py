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

import math
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
from analogebl.memory import check_fits
from analogebl.spec import COUNT, POSITIVE, Range

__all__ = ["load_circuit", "circuit_from_dict"]

_TOP = {"description", "input", "defaults", "hidden", "output"}
_INPUT = {"channels", "size", "features"}
_DEFAULTS = {"num_classes", "width", "bias_gain"}
_HIDDEN = {"coupling", "channels", "units", "pool", "gain", "kernel_size", "padding"}
_OUTPUT = {"gain"}


def _table(doc: dict, key: str, path, prefix: str = "") -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"expected a table, got {value!r}", path=path, key=prefix + key)
    return value


def _check_keys(table: dict, allowed: set[str], path, prefix: str) -> None:
    for k in table:
        if k not in allowed:
            raise ConfigError(
                f"unknown key; allowed: {', '.join(sorted(allowed))}", path=path, key=prefix + k
            )


def _positive_int(value: Any, path, key: str) -> int:
    return COUNT.check(key, value, path)


def _positive_float(value: Any, path, key: str) -> float:
    return POSITIVE.check(key, value, path)


def _scaled(n: int, width: float) -> int:
    """A hidden layer's size after the width override (at least 1)."""
    return max(1, round(n * width))


def _entry_params(h: dict, prev_channels: int, width: float) -> int:
    """Lower bound on the parameters of one more copy of ``[[hidden]]`` entry ``h`` after a
    layer of ``prev_channels`` channels/units (a repeated entry meets itself)."""
    if h.get("coupling") == "conv":
        n, ks = h.get("channels"), h.get("kernel_size", 3)
        if isinstance(n, int) and isinstance(ks, int) and n > 0 and ks > 0:
            return _scaled(n, width) * prev_channels * ks * ks
        return 1
    n = h.get("units")
    return _scaled(n, width) * prev_channels if isinstance(n, int) and n > 0 else 1


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
    input_shape: tuple[int, ...] | None = None,
) -> Circuit:
    """Build a :class:`Circuit` from a parsed circuit file, applying the overrides.

    ``width`` scales hidden channel/unit counts (``max(1, round(n * width))``); ``gains``
    replaces every coupling's gain (one value per coupling, bottom to top); ``pool``
    replaces the pooling of every conv coupling; ``depth`` sets the number of hidden layers
    (the file's first ``depth`` ``[[hidden]]`` entries, the last one repeated as needed).
    ``input_shape``: the shape of one input sample (the dataset's ``(C, H, W)`` after
    padding) the circuit's input layer must take.

    Every value is checked (finite, in range, the right type), every layer must keep a
    size >= 1 (a kernel larger than its padded input, a 2x2 pool of an odd size are refused)
    and the parameters must fit in memory (:mod:`analogebl.memory`), all before any array
    is drawn. A bad value in the file raises :class:`ConfigError` naming ``path`` and the
    key; a bad override names ``circuit.<override>`` (the study key) without a path.
    """
    if not isinstance(doc, dict):
        raise ConfigError("expected a TOML table", path=path)
    _check_keys(doc, _TOP, path, "")
    if "description" in doc and not isinstance(doc["description"], str):
        raise ConfigError("expected a string", path=path, key="description")
    inp = _table(doc, "input", path)
    _check_keys(inp, _INPUT, path, "input.")
    defaults = _table(doc, "defaults", path)
    _check_keys(defaults, _DEFAULTS, path, "defaults.")
    output = _table(doc, "output", path)
    _check_keys(output, _OUTPUT, path, "output.")
    hidden = doc.get("hidden", [])
    if not isinstance(hidden, list) or not all(isinstance(h, dict) for h in hidden):
        raise ConfigError("expected [[hidden]] tables", path=path, key="hidden")
    for i, h in enumerate(hidden):
        _check_keys(h, _HIDDEN, path, f"hidden[{i}].")

    file_width = _positive_float(defaults.get("width", 1.0), path, "defaults.width")
    if width is None:
        width = file_width
    else:
        width = _positive_float(width, None, "circuit.width")
    if num_classes is None:
        num_classes = _positive_int(defaults.get("num_classes", 10), path, "defaults.num_classes")
    num_classes = _positive_int(num_classes, path, "defaults.num_classes")
    bias_gain = _positive_float(defaults.get("bias_gain", 0.5), path, "defaults.bias_gain")
    n_hidden = len(hidden)
    if depth is not None:
        depth = _positive_int(depth, None, "circuit.depth")
        if not hidden:
            raise ConfigError(
                f"circuit {name} has no [[hidden]] layer to repeat for depth {depth}",
                key="circuit.depth",
            )
        if depth > len(hidden):  # the last entry repeated: refuse before building layers
            last = hidden[-1]
            per = _entry_params(last, _entry_params(last, 1, width), width)
            check_fits(
                8 * (depth - len(hidden)) * per,
                f"circuit {name} at depth {depth}",
                key="circuit.depth",
            )
        n_hidden = depth

    def entry(i: int) -> dict:  # no list of `depth` entries is ever built
        return hidden[min(i, len(hidden) - 1)]

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
            raise ConfigError(f"must be [H, W], got {size!r}", path=path, key="input.size")
        if "channels" in inp:
            _positive_int(inp["channels"], path, "input.channels")
        c = in_channels if in_channels is not None else inp.get("channels", 1)
        c = _positive_int(c, path, "input.channels")
        shape = (c, *(_positive_int(s, path, "input.size") for s in size))
    if input_shape is not None:
        _check_input(shape, tuple(input_shape), path, "features" in inp)

    n_couplings = n_hidden + 1
    if gains is not None:
        if not isinstance(gains, list | tuple) or len(gains) != n_couplings:
            raise ConfigError(
                f"circuit {name} needs {n_couplings} gains (one per coupling), got {gains!r}",
                key="circuit.gains",
            )
        gains = [_positive_float(g, None, "circuit.gains") for g in gains]
    if pool is not None:
        if pool not in (p.value for p in Pool):
            raise ConfigError(f"must be max, avg or none, got {pool!r}", key="circuit.pool")
        if not any(h.get("coupling") == "conv" for h in hidden[:n_hidden]):
            raise ConfigError(
                f"circuit {name} has no conv coupling to pool (its couplings are dense)",
                key="circuit.pool",
            )

    layers = [Layer("x", shape, Activation.INPUT)]
    couplings: list[Coupling] = []
    for i in range(n_hidden):
        h = entry(i)
        j = min(i, len(hidden) - 1)  # the file's entry (keys name it)
        key = f"hidden[{j}]."
        kind_s = h.get("coupling")
        try:
            kind = CouplingKind(kind_s)
        except ValueError:
            raise ConfigError(
                f"must be 'dense' or 'conv', got {kind_s!r}", path=path, key=key + "coupling"
            ) from None
        if gains is not None:
            gain = gains[i]
        else:
            gain = _positive_float(h.get("gain", 0.5), path, key + "gain")
        pre = layers[-1]
        if kind is CouplingKind.CONV:
            n = _scaled(_positive_int(h.get("channels"), path, key + "channels"), width)
            p_s = pool if pool is not None else h.get("pool", "max")
            try:
                p = Pool(p_s)
            except ValueError:
                raise ConfigError(
                    f"must be max, avg or none, got {p_s!r}", path=path, key=key + "pool"
                ) from None
            ks = _positive_int(h.get("kernel_size", 3), path, key + "kernel_size")
            pad = Range(0, ks - 1, integer=True).check(key + "padding", h.get("padding", 1), path)
            if len(pre.shape) != 3:
                raise ConfigError(
                    "a conv coupling needs a (C, H, W) layer below it",
                    path=path,
                    key=key + "coupling",
                )
            hh = pre.shape[1] + 2 * pad - ks + 1
            ww = pre.shape[2] + 2 * pad - ks + 1
            if hh < 1 or ww < 1:
                raise ConfigError(
                    f"a {ks}x{ks} kernel (padding {pad}) does not fit layer {pre.name} of "
                    f"size {pre.shape[1]}x{pre.shape[2]} (layer {i + 1} would be {hh}x{ww})",
                    path=path,
                    key=key + "kernel_size",
                )
            if p is not Pool.NONE:
                if hh % 2 or ww % 2:
                    where = "pool" if pool is None else None
                    raise ConfigError(
                        f"2x2 pooling needs even sizes, layer {i + 1} is {hh}x{ww} before "
                        'pooling (pool = "none", or another kernel_size/padding)',
                        path=path if where else None,
                        key=key + "pool" if where else "circuit.pool",
                    )
                hh, ww = hh // 2, ww // 2
            post_shape: tuple[int, ...] = (n, hh, ww)
            coupling = Coupling(f"W{i + 1}", i, kind, gain, ks, pad, p)
        else:
            for bad in ("pool", "channels", "kernel_size", "padding"):
                if bad in h:
                    raise ConfigError("not allowed for a dense coupling", path=path, key=key + bad)
            n = _scaled(_positive_int(h.get("units"), path, key + "units"), width)
            post_shape = (n,)
            coupling = Coupling(f"W{i + 1}", i, kind, gain)
        layers.append(Layer(f"h{i + 1}", post_shape, Activation.HARD_SIGMOID))
        couplings.append(coupling)
    if gains is not None:
        gain = gains[-1]
    else:
        gain = _positive_float(output.get("gain", 0.5), path, "output.gain")
    couplings.append(Coupling(f"W{n_hidden + 1}", n_hidden, CouplingKind.DENSE, gain))
    layers.append(Layer("out", (num_classes,), Activation.LINEAR))
    try:
        circuit = Circuit(
            name, tuple(layers), tuple(couplings), bias_gain, description=doc.get("description", "")
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), path=path) from None
    shapes = circuit.parameter_shapes()
    n_par = sum(math.prod(s) for s in shapes.values())
    big = max(range(len(couplings)), key=lambda k: math.prod(shapes[couplings[k].name]))
    if overridden := (width != file_width):
        where, key = None, "circuit.width"  # the study's override made it this large
    elif big < n_hidden:
        j = min(big, len(hidden) - 1)
        where, key = path, f"hidden[{j}]." + ("channels" if "channels" in entry(big) else "units")
    else:
        where, key = path, "input.features" if "features" in inp else "defaults.num_classes"
    count = f"{n_par:,}" if n_par < 10**15 else f"10^{len(str(n_par)) - 1}"
    check_fits(  # its float64 parameters alone, before init_parameters draws them
        8 * n_par,
        f"circuit {name} ({count} parameters{', width ' + f'{width:g}' if overridden else ''})",
        path=where,
        key=key,
    )
    return circuit


def _check_input(shape: tuple[int, ...], sample: tuple[int, ...], path, dense: bool) -> None:
    """The circuit's input layer ``shape`` takes samples of shape ``sample``."""
    if dense:
        n = math.prod(sample)
        if shape[0] != n:
            raise ConfigError(
                f"the input layer has {shape[0]} features but the dataset's samples have "
                f"{n} ({'x'.join(map(str, sample))})",
                path=path,
                key="input.features",
            )
    elif tuple(shape[1:]) != tuple(sample[-2:]) or len(sample) != 3:
        raise ConfigError(
            f"the input layer is {'x'.join(map(str, shape[1:]))} but the dataset's samples "
            f"are {'x'.join(map(str, sample))} (set pad_to, or size = [H, W] to match)",
            path=path,
            key="input.size",
        )


def load_circuit(name: str, **overrides) -> Circuit:
    """Load a catalog circuit by name (or a ``.toml`` path); see :func:`circuit_from_dict`."""
    path = find_entry("circuits", name)
    return circuit_from_dict(read_toml(path), Path(path).stem, path=path, **overrides)
