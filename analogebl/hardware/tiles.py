"""③ Tiles: how a profile's physical arrays (``array.*``) cut each coupling's crossbar, and what
that adds to a relaxation (converted partial sums, column-current limits, node clamps).

Mapping. A coupling is one logical crossbar of ``rows x cols`` device pairs: dense ``W`` is
``n_pre x n_post``; a conv kernel ``W[o, c, i, j]`` is the unrolled ``(C_in k k) x C_out``
array, reused at every output position. It is cut into tiles of at most
``tile_rows x tile_cols`` devices (``0``: no limit on that axis): dense rows in blocks of
``tile_rows`` pre nodes, conv rows in blocks of ``tile_rows // (k k)`` whole input channels
(a kernel's ``k x k`` rows stay in one tile), columns in blocks of ``tile_cols`` post nodes
(dense) or output channels (conv).

Reads (``analogebl.plan.effects``, "Tiled reads"). With tiling, each tile's column outputs
are converted by the ADC and the partial sums are added digitally; a node's new state is
then driven back onto the rows by the DAC, so the node quantizer of a hidden or output
layer is the DAC (:func:`analogebl.hardware.quantize.state_quantizers`). A partial sum can
have either sign, so the ADC of a tile output spans ``[-(hi - lo), hi - lo]`` of the
receiving layer's node range ([-1, 1] into a hidden layer, [-3, 3] into the output)
[assumed: the sense amplifier's gain is set so one tile's full swing fits]. Without
tiling the circuit is one analog array per coupling and the ADC reads the nodes.
``array.i_col_max_A`` limits a column's current: in field units
``i_max = i_col_max_A / (g_unit v_read_V)`` (the differential pair's net current is
clipped [assumed]).

Node clamps. ``neuron.diode_*`` and ``amplifier_gain`` become a :class:`NodeClamp` per hidden
layer; conductances are in units of the layer's unit weight ``g_unit`` (of the coupling
into it): ``kappa = 1 / (r g_unit)``; the rails ``v_low_V``, ``v_high_V`` are the states 0
and 1, so the threshold is ``diode_vth_V / (v_high_V - v_low_V)`` in state units.
"""

from __future__ import annotations

import math

from analogebl.hardware.profile import HardwareProfile
from analogebl.hardware.quantize import OUTPUT_RANGE
from analogebl.plan.effects import NodeClamp, StateQuantizer, TileReads

__all__ = [
    "conv_channels_per_tile",
    "conversions_per_example",
    "node_clamps",
    "tile_reads",
    "tile_shape",
    "tiled",
]


def tiled(prof: HardwareProfile) -> bool:
    """True when the profile cuts couplings into tiles (``tile_rows`` or ``tile_cols``)."""
    return bool(prof.get("array", "tile_rows") or prof.get("array", "tile_cols"))


def _splits(n: int, block: int) -> tuple[int, ...]:
    if block <= 0 or block >= n:
        return (0, n)
    return tuple(range(0, n, block)) + (n,)


def tile_shape(plan, c) -> tuple[int, int, int]:
    """``(rows, cols, positions)`` of coupling ``c``'s logical array: the unrolled conv
    kernel is ``(C_in k k) x C_out``, read at ``positions`` output positions per example."""
    pre, post = plan.layer_shapes[c.pre], plan.layer_shapes[c.post]
    if c.kind == "dense":
        return math.prod(pre), math.prod(post), 1
    k = c.kernel_size
    h_out = pre[1] + 2 * c.padding - k + 1
    w_out = pre[2] + 2 * c.padding - k + 1
    return pre[0] * k * k, post[0], h_out * w_out


def _row_col_splits(prof: HardwareProfile, plan, c) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tile boundaries over the pre axis (dense nodes / conv input channels) and the post
    axis (dense nodes / conv output channels)."""
    tr, tc = prof.get("array", "tile_rows"), prof.get("array", "tile_cols")
    pre, post = plan.layer_shapes[c.pre], plan.layer_shapes[c.post]
    if c.kind == "dense":
        return _splits(math.prod(pre), tr), _splits(math.prod(post), tc)
    kk = c.kernel_size**2
    if tr and tr < kk:
        raise ValueError(
            f"array.tile_rows = {tr} cannot hold one {c.kernel_size}x{c.kernel_size} kernel "
            f"of coupling {c.name} ({kk} rows)"
        )
    return _splits(pre[0], conv_channels_per_tile(tr, kk)), _splits(post[0], tc)


def conv_channels_per_tile(tile_rows: int, kk: int) -> int:
    """Whole input channels (``kk = k*k`` rows each) in one tile of ``tile_rows`` rows
    (``0``: no limit)."""
    return tile_rows // kk if tile_rows else 0


def _partial_sum_adc(prof: HardwareProfile, node_range: tuple[float, float]):
    bits = prof.get("adc", "bits")
    if not bits:
        return None
    width = node_range[1] - node_range[0]
    q = StateQuantizer.from_bits(bits, -width, width)
    return StateQuantizer(
        q.levels, q.lo, q.hi, prof.get("adc", "noise_lsb") * q.step,
        prof.get("adc", "stochastic_rounding"),
    )  # fmt: skip


def tile_reads(
    prof: HardwareProfile, plan, g_unit: dict[str, float] | None
) -> dict[str, TileReads] | None:
    """Each coupling's :class:`TileReads` (module docstring); ``None`` when the reads are
    exact (no tiles, or tiles without an ADC and without a current limit).

    ``g_unit``: siemens per weight unit of each coupling (needed for ``i_col_max_A``).
    """
    i_col = prof.get("array", "i_col_max_A")
    if not (tiled(prof) and prof.get("adc", "bits")) and not i_col:
        return None
    v_read = prof.get("energy", "v_read_V")
    out = {}
    for c in plan.couplings:
        rows, cols = _row_col_splits(prof, plan, c)  # untiled: one tile per coupling
        fwd_range = OUTPUT_RANGE if c.post == plan.output else (0.0, 1.0)
        i_max = math.inf
        if i_col:
            if not g_unit:
                raise ValueError("array.i_col_max_A needs the crossbars' g_unit")
            i_max = i_col / (g_unit[c.name] * v_read)
        adc = tiled(prof)
        out[c.name] = TileReads(
            rows,
            cols,
            _partial_sum_adc(prof, fwd_range) if adc else None,
            _partial_sum_adc(prof, (0.0, 1.0)) if adc else None,
            i_max,
        )
    return out


def node_clamps(
    prof: HardwareProfile, plan, g_unit: dict[str, float] | None
) -> tuple[NodeClamp | None, ...] | None:
    """One :class:`NodeClamp` per layer (``None`` for the input and output); ``None`` when
    every hidden node is the ideal clip."""
    g = prof.get
    r_on, r_off = g("neuron", "diode_r_on_ohm"), g("neuron", "diode_r_off_ohm")
    span = g("neuron", "v_high_V") - g("neuron", "v_low_V")  # the rails are states 0 and 1
    vth, gain = g("neuron", "diode_vth_V") / span, g("neuron", "amplifier_gain")
    ideal = NodeClamp()
    out: list[NodeClamp | None] = [None]
    for k in range(1, plan.output):
        name = plan.couplings[k - 1].name
        need_g = r_on > 0 or math.isfinite(r_off)
        if need_g and not g_unit:
            raise ValueError("diode resistances need the crossbars' g_unit")
        gu = g_unit[name] if need_g else 1.0
        clamp = NodeClamp(
            gain=gain,
            kappa_off=0.0 if math.isinf(r_off) else 1.0 / (r_off * gu),
            kappa_on=math.inf if r_on == 0 else 1.0 / (r_on * gu),
            v_th=vth,
        )
        out.append(None if clamp == ideal else clamp)
    out.append(None)
    return None if all(c is None for c in out) else tuple(out)


def conversions_per_example(prof: HardwareProfile, plan) -> tuple[float, float]:
    """``(adc, dac)`` conversions per example: ADC reads per relaxation iteration and DAC
    writes per example held for the step (the input), plus per iteration for tiled nodes.

    Untiled: the ADC reads every non-input node once per iteration. Tiled: each layer
    update reads, per tile row block, every column at every position (forward) and, per
    column block, every pre node (adjoint); the DAC writes every updated node back.
    Returns ``(adc_per_iteration, dac_per_iteration)``; the input's DAC is separate.
    """
    shapes = plan.layer_shapes
    nodes = sum(math.prod(s) for s in shapes[1:])
    if not tiled(prof):
        return float(nodes), 0.0
    adc = 0
    for c in plan.couplings:
        rows, cols = _row_col_splits(prof, plan, c)
        _, n_cols, positions = tile_shape(plan, c)
        adc += (len(rows) - 1) * n_cols * positions  # forward reads into the post layer
        if c.pre >= 1:  # adjoint reads into a hidden pre layer
            adc += (len(cols) - 1) * math.prod(shapes[c.pre])
    return float(adc), float(nodes)
