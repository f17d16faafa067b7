"""③/⑦ The circuit's parameters as crossbars of device pairs, and their physical readouts.

Mapping (``conductance.mapping = "differential"``): every parameter tensor (coupling weights
and the bias, which is one more crossbar row driven at ``v_read``) is a differential pair

    W = (G+ - G-) / g_unit,   g_unit = (g_max - g_min) / w_max,   w_max = 2 max|W_init|

(per tensor; a bias uses the ``w_max`` of its layer's weights), so ``|W| = w_max`` puts one
device at ``g_max`` and the other at ``g_min``. Initial programming rounds to the nominal
conductance levels; with ``update.model = "ideal"`` the devices are continuous (programmed
and updated exactly within their bounds, no pulses). With ``mapping = "ideal_signed"`` the
parameters are kept as numbers (read noise relative to ``|W|`` still applies).

Physical readouts (the state-to-voltage scale is ``v_read``): the power dissipated in a
crossbar whose rows carry ``V_i`` (and ``-V_i`` on the inverted rows that feed the G-
column) and whose columns sit at ``V_j`` is

    P = sum_ij G+_ij (V_i - V_j)^2 + G-_ij (V_i + V_j)^2;

a conv coupling is its unrolled ``(C_in k k) x C_out`` array read at every output position
``p`` (rows: the input patch at ``p``; columns: the post node over ``p``, a pooled node
covering its 2x2 window [assumed]), ``P = sum_p P(p)``. Power is additive over devices, so
the sum over tiles is the sum over the whole array;
the energy of a relaxation is ``P * iterations * t_read_sec``, and the energy of an update
``sum over pulses of V_w^2 G t_w``.

Line resistance (``array.r_wire_ohm``, terminals, access device): each tile of a coupling's
unrolled array (``analogebl.hardware.tiles``) is a linear resistive network, so a read
realises ``I = v @ G_eff`` with the tile's effective conductance
(:func:`analogebl.hardware.parasitics.effective_conductance`, an exact elimination of its
lines); the weights a read sees are ``W = (G+_eff - G-_eff) / g_unit`` (the G+ and G-
devices on twin tiles). The adjoint read (columns driven, rows sensed) sees the same
``G_eff`` by reciprocity, so the energy stays symmetric. Biases (one row at ``v_read``) see
no drop. The exact solve is redone per tile, not at every update: between solves a tile's
``G_eff`` is tracked from its last solve (``G_ref``, ``G_eff,ref``) as

    G_eff(G) ~ G_dec(G) + c_ref o (rho_row rho_col^T),   c_ref = G_eff,ref - G_dec(G_ref),
    rho_row,i = sum_j G_ij / sum_j G_ref,ij,   rho_col,j = sum_i G_ij / sum_i G_ref,ij

(sums within the tile), with ``G_dec`` the decoupled-line model
(:func:`~analogebl.hardware.parasitics.decoupled_conductance`: each cell through its own row
and column ladder, which gives each cell's own, nonlinear, contribution to a few 1e-4) and
``c`` the current that row ``i`` sends into column ``j`` through other cells, whose paths run
through one other cell of row ``i`` and one of column ``j``, hence the line-sum scaling. At a
solve, and while a tile's ``G`` equals its ``G_ref``, the value is the exact one. A tile is
solved again (and becomes the new reference) when the estimated relative error of its
``G_eff`` (Frobenius norm),

    err ~ kappa drop ||G - G_ref||_F / ||G_ref||_F,   drop = sum |G_ref - G_eff,ref| / sum G_ref,

exceeds ``array.ir_refresh_tol``; ``kappa = IR_TRACK_KAPPA = 0.08``. Calibration, against
exact solves of every 128 x 128 / 512 x 512 tile of W1 and W2 of the dense MNIST network
784-512-10 trained by C-EP (batch 128): along 40 consecutive updates from references at
update 0, 10 and 20 under pessimistic, reram_like, pcm_like and ecram_like, and along 400
updates (every 25th; references every 50 updates under pessimistic, at 0, 100 and 200 under
pcm_like), the measured error over ``drop ||G - G_ref|| / ||G_ref||`` is at most 0.071
(median 0.011); synthetic changes of a tile (uniform scaling by 0.7..1.3, row and column
ramps, saddles, blocks, a diagonal bump, drift, 10 to 30 % resets and iid noise, a shuffle)
reach 0.078. The tracking error itself, over W1 with no solve after update 0: 0.40 % (worst
tile 0.70 %) after 400 pessimistic updates, 1.2 % (1.3 %) after 400 pcm_like updates,
0.06 % after 40 reram_like or ecram_like updates; keeping each device's attenuation
``G_eff / G`` of the last solve instead is off by 14 %, 590 %, 3.5 % and 3.1 % (pcm_like's
SET-only updates and pair resets move devices far from where they were). Checkpoints hold
each tile's ``G_ref`` (``ir/<name>/<side>``); a resume redoes those solves (deterministic)
and tracks from them, so it realises the same weights bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogebl.hardware.devices import DeviceArray, DeviceParams, exp_saturating_k_gamma
from analogebl.hardware.parasitics import (
    LineResistance,
    decoupled_conductance,
    effective_conductance,
)
from analogebl.hardware.profile import HardwareProfile
from analogebl.hardware.pulses import pulse_counts, split_pair
from analogebl.hardware.tiles import conv_channels_per_tile

__all__ = ["Crossbars", "UpdateStats", "device_params"]


@dataclass(frozen=True)
class UpdateStats:
    """Counters of one conductance update."""

    pulses: int
    energy_J: float
    refreshes: int = 0
    #: per parameter tensor, the fraction of its devices (both of every pair) that this
    #: update left alone: no pulse (or, on continuous devices, no write)
    idle: dict[str, float] | None = None


def device_params(prof: HardwareProfile) -> DeviceParams:
    """The profile's update/variability/faults/retention fields as :class:`DeviceParams`."""
    g = prof.get
    model, n = g("update", "model"), g("update", "n_states") or 1  # None: continuous
    k_up, k_down = g("update", "step_scale_up"), g("update", "step_scale_down")
    gu, gd = g("update", "gamma_up"), g("update", "gamma_down")
    if model == "constant_step":
        gu = gd = 0.0
    elif model == "soft_bounds":
        gu = gd = 1.0
    elif model == "exp_saturating":
        ku, gu = exp_saturating_k_gamma(g("update", "a_norm_up"), n)
        kd, gd = exp_saturating_k_gamma(g("update", "a_norm_down"), n)
        k_up, k_down = k_up * ku, k_down * kd
    return DeviceParams(
        model,
        g("conductance", "g_min_S"),
        g("conductance", "g_max_S"),
        n,
        k_up,
        k_down,
        gu,
        gd,
        g("update", "asymmetry"),
        tuple(
            g("update", k)
            for k in ("exp_a", "exp_b", "exp_gamma_up", "exp_gamma_down", "exp_A_up", "exp_A_down")
        ),
        g("variability", "c2c_std"),
        g("variability", "c2c_mode"),
        g("variability", "write_noise_std"),
        g("variability", "dtod_step_std"),
        g("variability", "dtod_step_lognormal"),
        g("variability", "dtod_asymmetry_std"),
        g("variability", "dtod_bounds_std"),
        g("variability", "dtod_gamma_std"),
        g("faults", "stuck_prob"),
        g("faults", "stuck_mode"),
        g("faults", "stuck_on_fraction"),
        g("retention", "drift_model"),
        g("retention", "drift_nu"),
        g("retention", "drift_nu_std"),
        g("retention", "drift_t0_sec"),
        g("retention", "decay_lifetime_sec"),
        g("conductance", "g_min_S")
        + g("update", "reset_g_rel") * (g("conductance", "g_max_S") - g("conductance", "g_min_S")),
        tuple(float(c) for c in g("retention", "prog_noise_poly_S")),
    )


# the tracking error estimate's calibrated constant (module docstring, "Line resistance")
IR_TRACK_KAPPA = 0.08


class _IRTrack:
    """The IR-drop state of one side of a tensor: each tile's last exact solve, in the padded
    tile layout ``(n_r, rb, n_c, cb)`` of :meth:`Crossbars._padded`, and the tracking model
    between solves (module docstring, "Line resistance").

    Attributes
    ----------
    g_ref, eff_ref, c_ref : ndarray, shape (n_r, rb, n_c, cb)
        ``G`` at each tile's last exact solve, its exact ``G_eff`` and the coupling
        ``c = G_eff - G_dec`` [S] (0 on the padding).
    row_ref, col_ref : ndarray, shapes (n_r, rb, n_c) and (n_r, n_c, cb)
        Line sums of ``g_ref`` within each tile [S].
    norm_ref, drop : ndarray, shape (n_r, n_c)
        ``||g_ref||_F`` per tile and its drop ``sum |G - G_eff| / sum G`` at the solve.
    shape : tuple
        The tensor's shape.
    g_last, eff_last : ndarray or None
        The last read's ``G`` and the ``G_eff`` it realised (tensor shapes).
    """

    def __init__(self, shape, P: np.ndarray, real_rows: list[int], real_cols: list[int]):
        n_r, rb, n_c, cb = P.shape
        self.shape = tuple(shape)  # the tensor's
        self.rb, self.real_rows, self.real_cols = rb, real_rows, real_cols
        self.g_ref = np.zeros_like(P)
        self.eff_ref = np.zeros_like(P)
        self.c_ref = np.zeros_like(P)
        self.row_ref = np.zeros((n_r, rb, n_c))
        self.col_ref = np.zeros((n_r, n_c, cb))
        self.norm_ref = np.zeros((n_r, n_c))
        self.drop = np.zeros((n_r, n_c))
        self.g_last: np.ndarray | None = None
        self.eff_last: np.ndarray | None = None

    def real(self, a: int, b: int) -> tuple[slice, slice]:
        """The real (unpadded) rows and columns of tile ``(a, b)``, as slices of ``P[a, :, b]``."""
        return slice(self.rb - self.real_rows[a], self.rb), slice(0, self.real_cols[b])

    def set_reference(self, a: int, b: int, P: np.ndarray, eff: np.ndarray, dec: np.ndarray):
        """Tile ``(a, b)`` of ``P`` was solved exactly: ``eff`` is the ``G_eff`` of its real
        part, ``dec`` the :func:`decoupled_conductance` of ``P``."""
        rs, cs = self.real(a, b)
        g = P[a, :, b]
        self.g_ref[a, :, b] = g
        self.eff_ref[a, :, b] = 0.0
        self.eff_ref[a, rs, b, cs] = eff
        self.c_ref[a, :, b] = self.eff_ref[a, :, b] - dec[a, :, b]
        self.row_ref[a, :, b] = g.sum(axis=1)
        self.col_ref[a, b] = g.sum(axis=0)
        self.norm_ref[a, b] = np.sqrt(np.sum(g * g))
        total = float(g.sum())
        self.drop[a, b] = float(np.abs(g - self.eff_ref[a, :, b]).sum()) / total if total else 0.0

    def track(self, P: np.ndarray, dec: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """The tracked ``G_eff`` of ``P`` (``dec`` its ``G_dec``) and the tiles whose estimated
        error exceeds ``tol`` (bool, (n_r, n_c)); a tile equal to its reference gets its exact
        ``G_eff``.

            G_eff ~ G_dec + c_ref (rho_row rho_col^T),   rho = line sum / line sum at the solve
            error ~ IR_TRACK_KAPPA drop ||G - G_ref||_F / ||G_ref||_F     (per tile)
        """
        one = np.ones_like(self.row_ref)
        rho_r = np.divide(P.sum(axis=3), self.row_ref, out=one, where=self.row_ref > 0)
        one = np.ones_like(self.col_ref)
        rho_c = np.divide(P.sum(axis=1), self.col_ref, out=one, where=self.col_ref > 0)
        model = dec + self.c_ref * rho_r[:, :, :, None] * rho_c[:, None, :, :]
        diff = P - self.g_ref
        change = np.sqrt(np.einsum("aibj,aibj->ab", diff, diff))
        same = change == 0
        if same.any():
            for a, b in zip(*np.nonzero(same), strict=True):
                model[a, :, b] = self.eff_ref[a, :, b]
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.where(same, 0.0, IR_TRACK_KAPPA * self.drop * change / self.norm_ref)
        return model, ~(est <= tol)  # a tile that was all 0 S (nan, inf) is solved again


class Crossbars:
    """Device pairs of every parameter; converts updates to pulses (see module docstring)."""

    def __init__(
        self, prof: HardwareProfile, params: dict[str, np.ndarray], rng: np.random.Generator
    ):
        self.profile = prof
        self.differential = prof.get("conductance", "mapping") == "differential"
        self.names = list(params)
        self.w: dict[str, np.ndarray] = {}
        self.g_unit: dict[str, float] = {}
        self.pairs: dict[str, tuple[DeviceArray, DeviceArray]] = {}
        if not self.differential:
            self.w = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
            return
        p = device_params(prof)
        self.p = p
        a = prof.get
        self.lines = LineResistance(
            a("array", "r_wire_ohm"),
            a("array", "r_row_terminal_ohm"),
            a("array", "r_col_terminal_ohm"),
            a("array", "r_access_ohm"),
        )
        self.tile_rows, self.tile_cols = a("array", "tile_rows"), a("array", "tile_cols")
        self.ir_tol = a("array", "ir_refresh_tol")
        self._ir: dict[tuple[str, int], _IRTrack] = {}  # (name, side): tracked G_eff
        self.ir_solves = 0  # exact IR-drop solves of one tile so far
        w_max = {}
        for k, v in params.items():
            w_max[k] = 2.0 * float(np.max(np.abs(v))) if np.size(v) else 0.0
        for k in params:  # b_k borrows W_k's scale (biases start at zero)
            if w_max[k] == 0.0:
                w_max[k] = w_max.get("W" + k[1:], 0.0) or 1.0
        for k, v in params.items():
            gu = p.range_S / w_max[k]
            self.g_unit[k] = gu
            plus, minus = DeviceArray(p, v.shape, rng), DeviceArray(p, v.shape, rng)
            v = np.asarray(v, dtype=np.float64)
            plus.program(p.g_min_S + np.maximum(v, 0.0) * gu, rng)
            minus.program(p.g_min_S + np.maximum(-v, 0.0) * gu, rng)
            self.pairs[k] = (plus, minus)

    # ------------------------------------------------------------------ reads
    def weights(self) -> dict[str, np.ndarray]:
        """Effective parameters ``(G+ - G-)/g_unit`` as a read sees them (float64)."""
        if not self.differential:
            return {k: v.copy() for k, v in self.w.items()}
        if self.lines.ideal:
            return {k: (a.visible - b.visible) / self.g_unit[k] for k, (a, b) in self.pairs.items()}
        return {
            k: (self._attenuated(k, 0, a.visible) - self._attenuated(k, 1, b.visible))
            / self.g_unit[k]
            for k, (a, b) in self.pairs.items()
        }

    def _attenuated(self, name: str, side: int, G: np.ndarray) -> np.ndarray:
        """``G_eff`` of one side of a pair as a read sees it: each tile tracked from its last
        exact solve, and solved again when its estimated error passes ``ir_tol`` (module
        docstring, "Line resistance")."""
        if G.ndim < 2:
            return G
        tr = self._ir.get((name, side))
        if tr is not None and np.array_equal(G, tr.g_last):
            return tr.eff_last
        P = self._padded(G)
        dec = decoupled_conductance(P.swapaxes(1, 2), self.lines).swapaxes(1, 2)
        if tr is None:
            tr = self._ir[(name, side)] = _IRTrack(G.shape, P, *self._real_sizes(G.shape))
            stale = np.ones(P.shape[::2], dtype=bool)
        else:
            model, stale = tr.track(P, dec, self.ir_tol)
        for a, b in zip(*np.nonzero(stale), strict=True):
            self._solve_tile(tr, P, dec, int(a), int(b))
        if stale.all():
            model = tr.eff_ref.copy()
        else:
            for a, b in zip(*np.nonzero(stale), strict=True):
                model[a, :, b] = tr.eff_ref[a, :, b]
        tr.g_last, tr.eff_last = G.copy(), self._unpadded(model, G.shape)
        return tr.eff_last

    def _solve_tile(self, tr: _IRTrack, P: np.ndarray, dec: np.ndarray, a: int, b: int):
        """Exact ``G_eff`` of tile ``(a, b)`` of ``P``: the tile's new reference in ``tr``."""
        rs, cs = tr.real(a, b)
        tr.set_reference(a, b, P, effective_conductance(P[a, rs, b, cs], self.lines), dec)
        self.ir_solves += 1

    # the unrolled array of a tensor as tiles padded to one shape
    def _unrolled(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(rows, cols, rb, cb)``: the unrolled array of a tensor of ``shape`` (dense
        ``(in, out)``; conv ``(C_in k k, C_out)``, whole kernels per tile) and its tile
        shape."""
        if len(shape) == 2:
            (rows, cols), block = shape, self.tile_rows
        else:  # conv (C_out, C_in, k, k): rows (c, i, j)
            kk = shape[2] * shape[3]
            rows, cols = shape[1] * kk, shape[0]
            block = conv_channels_per_tile(self.tile_rows, kk) * kk
        rb = block if block and block < rows else rows
        cb = self.tile_cols if self.tile_cols and self.tile_cols < cols else cols
        return rows, cols, rb, cb

    def _real_sizes(self, shape: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """Real rows of each tile row and real columns of each tile column."""
        rows, cols, rb, cb = self._unrolled(shape)
        return (
            [min(rb, rows - r0) for r0 in range(0, rows, rb)],
            [min(cb, cols - c0) for c0 in range(0, cols, cb)],
        )

    def _padded(self, G: np.ndarray) -> np.ndarray:
        """``max(G, 0)`` as the tiles of its unrolled array, shape ``(n_r, rb, n_c, cb)``
        (tile ``(a, b)`` is ``P[a, :, b]``). A last, shorter tile row is padded with zero rows
        above its first row, a last, narrower tile column with zero columns right of its last
        column: dangling wire, which changes no current."""
        rows, cols, rb, cb = self._unrolled(G.shape)
        mat = np.maximum(G, 0.0)  # a spread bound or write noise may dip below 0 S
        mat = mat if G.ndim == 2 else mat.reshape(G.shape[0], -1).T
        n_r, n_c = -(-rows // rb), -(-cols // cb)
        P = np.zeros((n_r * rb, n_c * cb))
        top = (n_r - 1) * rb
        P[:top, :cols] = mat[:top]
        P[n_r * rb - (rows - top) :, :cols] = mat[top:]
        return P.reshape(n_r, rb, n_c, cb)

    def _unpadded(self, P: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of :meth:`_padded` (a tensor of ``shape``)."""
        rows, cols, rb, _ = self._unrolled(shape)
        n_r = P.shape[0]
        flat = P.reshape(n_r * rb, -1)
        top = (n_r - 1) * rb
        mat = np.concatenate([flat[:top, :cols], flat[n_r * rb - (rows - top) :, :cols]])
        return mat if len(shape) == 2 else np.ascontiguousarray(mat.T).reshape(shape)

    def effective(self, G: np.ndarray) -> np.ndarray:
        """The exact conductances one side of a pair presents to a read through its lines: a
        weight tensor's unrolled array (dense ``(in, out)``; conv ``(C_in k k, C_out)``) cut
        into tiles, each replaced by its ``G_eff``; a bias (1-D) is returned as is."""
        if G.ndim < 2 or self.lines.ideal:
            return G
        G = np.maximum(G, 0.0)  # a spread bound or write noise may dip below 0 S
        rows, cols, rb, cb = self._unrolled(G.shape)
        mat = G if G.ndim == 2 else G.reshape(G.shape[0], -1).T
        out = np.empty_like(mat)
        for r0 in range(0, rows, rb):
            for c0 in range(0, cols, cb):
                t = (slice(r0, r0 + rb), slice(c0, c0 + cb))
                out[t] = effective_conductance(mat[t], self.lines)
        return out if G.ndim == 2 else out.T.reshape(G.shape)

    def read_noise_std(self) -> dict[str, np.ndarray] | None:
        """Std of one read of each parameter, in weight units:
        ``sqrt((s_r G+)^2 + (s_r G-)^2 + 2 s_abs^2) / g_unit`` (``s_r |W|`` without a pair)."""
        rel = self.profile.get("read", "noise_rel")
        ab = self.profile.get("read", "noise_abs_S")
        if rel == 0 and ab == 0:
            return None
        if not self.differential:
            return {k: rel * np.abs(v) for k, v in self.w.items()}
        return {
            k: np.sqrt((rel * a.visible) ** 2 + (rel * b.visible) ** 2 + 2 * ab * ab)
            / self.g_unit[k]
            for k, (a, b) in self.pairs.items()
        }

    # ------------------------------------------------------------------ updates
    def apply(self, delta_w: dict[str, np.ndarray], rng: np.random.Generator) -> UpdateStats:
        """Realise the desired ``delta_w`` (weight units) as pulses on the devices."""
        if not self.differential:
            for k, d in delta_w.items():
                self.w[k] = self.w[k] + np.asarray(d, dtype=np.float64)
            return UpdateStats(0, 0.0)
        prof = self.profile
        uni = prof.get("update", "unidirectional")
        rounding, cap = prof.get("update", "rounding"), prof.get("update", "max_pulses")
        pulses, energy, refreshes = 0, 0.0, 0
        idle: dict[str, float] = {}
        for k, d in delta_w.items():
            dg = np.asarray(d, dtype=np.float64) * self.g_unit[k]
            touched = 0
            for dev, want in zip(self.pairs[k], split_pair(dg, uni), strict=True):
                if self.p.continuous:  # no levels: the devices take dG exactly, no pulses
                    dev.write(want)
                    touched += int(np.count_nonzero(want))
                    continue
                for up in (True, False):
                    part = np.maximum(want, 0.0) if up else np.maximum(-want, 0.0)
                    if not part.any():
                        continue
                    step = dev.nominal_up if up else dev.nominal_down
                    n = pulse_counts(part, step, rounding, cap, rng)
                    n[dev.stuck] = 0
                    energy += self._pulse_energy(dev, n, up)
                    dev.pulse(n, up, rng)
                    pulses += int(n.sum())
                    touched += int(np.count_nonzero(n))  # a device moves one way per update
            idle[k] = 1.0 - touched / max(2 * dg.size, 1)
            if uni:
                r, pe = self._refresh(k, rng)
                refreshes, pulses, energy = refreshes + r[0], pulses + r[1], energy + pe
        return UpdateStats(pulses, energy, refreshes, idle)

    def _pulse_energy(self, dev: DeviceArray, n: np.ndarray, up: bool) -> float:
        g = self.profile.get
        v = g("energy", "v_write_up_V" if up else "v_write_down_V")
        t = g("energy", "t_write_up_sec" if up else "t_write_down_sec")
        return float(np.sum(n * dev.G)) * v * v * t

    def _refresh(self, k: str, rng) -> tuple[tuple[int, int], float]:
        """PCM pair refresh: where a device passed ``refresh_at`` of its range, reset both
        devices to the reset level and re-program the difference with potentiation pulses."""
        prof, p = self.profile, self.p
        plus, minus = self.pairs[k]
        lim = p.g_min_S + prof.get("update", "refresh_at") * p.range_S
        need = ((plus.G > lim) | (minus.G > lim)) & ~plus.stuck & ~minus.stuck
        if not need.any():
            return (0, 0), 0.0
        diff = plus.G - minus.G
        reset = p.g_min_S + prof.get("update", "reset_g_rel") * p.range_S
        sd = prof.get("update", "reset_std_rel") * p.range_S
        for dev in (plus, minus):
            lvl = reset + sd * rng.standard_normal(dev.G.shape)
            dev.G = np.where(need, np.clip(lvl, dev.g_lo, dev.g_hi), dev.G)
        n_p = np.where(
            need, pulse_counts(np.maximum(diff, 0), plus.nominal_up, "stochastic", None, rng), 0
        )
        n_m = np.where(
            need, pulse_counts(np.maximum(-diff, 0), minus.nominal_up, "stochastic", None, rng), 0
        )
        energy = self._pulse_energy(plus, n_p, True) + self._pulse_energy(minus, n_m, True)
        plus.pulse(n_p, True, rng)
        minus.pulse(n_m, True, rng)
        return (int(need.sum()), int(n_p.sum() + n_m.sum())), energy

    def advance(self, seconds: float) -> None:
        """Let time pass on every device: exponential leak and drift."""
        for a, b in self.pairs.values():
            a.advance(seconds)
            b.advance(seconds)

    def leak(self, seconds: float) -> None:
        """The exponential leak alone (the time a training step takes; drift is advanced
        between epochs); each device returns at once without a lifetime."""
        for a, b in self.pairs.values():
            a.leak(seconds)
            b.leak(seconds)

    # ------------------------------------------------------------------ physics
    def crossbar_power_W(
        self, name: str, pre: np.ndarray, post: np.ndarray, coupling=None
    ) -> float:
        """Batch-mean power of crossbar ``name`` with node states ``pre`` (N, in) and
        ``post`` (N, out): ``sum G+ (V_i - V_j)^2 + G- (V_i + V_j)^2``, ``V = s v_read``;
        a conv ``coupling`` (:class:`~analogebl.plan.CouplingPlan`) sums it over positions
        (module docstring)."""
        v = self.profile.get("energy", "v_read_V")
        a, b = (x.visible for x in self.pairs[name])
        if coupling is not None and coupling.kind == "conv":
            return self._conv_power_W(a, b, pre * v, post * v, coupling.padding)
        vi, vj = pre.reshape(len(pre), -1) * v, post.reshape(len(post), -1) * v
        vi2, vj2 = (vi**2).mean(0), (vj**2).mean(0)
        cross = float(np.sum((vi @ (a - b)) * vj)) / len(vi)  # a GEMM, not einsum's triple loop
        return float(vi2 @ (a + b).sum(1) + (a + b).sum(0) @ vj2 - 2 * cross)

    @staticmethod
    def _conv_power_W(gp, gm, vi, vj, padding: int) -> float:
        """``sum_p P(p)`` of an unrolled conv array ``gp``, ``gm`` (C_out, C_in, k, k) with
        input voltages ``vi`` (N, C_in, H, W) and post voltages ``vj`` (N, C_out, H', W'),
        batch mean; one ``k x k`` offset at a time (no im2col copy)."""
        n, k = len(vi), gp.shape[-1]
        vp = np.pad(vi, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        h_out, w_out = vp.shape[2] - k + 1, vp.shape[3] - k + 1
        if vj.shape[2:] != (h_out, w_out):  # a pooled node covers its window
            fy, fx = h_out // vj.shape[2], w_out // vj.shape[3]
            vj = np.repeat(np.repeat(vj, fy, axis=2), fx, axis=3)
            vj = np.pad(vj, ((0, 0), (0, 0), (0, h_out - vj.shape[2]), (0, w_out - vj.shape[3])))
        s, d = gp + gm, gp - gm
        vj2 = vj.transpose(1, 0, 2, 3).reshape(vj.shape[1], -1)  # (C_out, N P)
        total = float(s.sum(axis=(1, 2, 3)) @ (vj2**2).sum(1))  # sum_p sum_j V_j^2 B_j
        for di in range(k):
            for dj in range(k):
                x = vp[:, :, di : di + h_out, dj : dj + w_out]
                x2 = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)  # (C_in, N P)
                total += float(s[:, :, di, dj].sum(0) @ (x2**2).sum(1))
                total -= 2.0 * float(np.sum(d[:, :, di, dj] * (vj2 @ x2.T)))
        return total / n

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, np.ndarray]:
        if not self.differential:
            return {f"w/{k}": v for k, v in self.w.items()}
        out = {}
        for k, (a, b) in self.pairs.items():
            for side, dev in (("plus", a), ("minus", b)):
                out.update({f"{side}/{k}/{n}": v for n, v in dev.state_dict().items()})
        for (k, side), tr in self._ir.items():  # each tile's G at its last exact IR solve
            out[f"ir/{k}/{side}"] = self._unpadded(tr.g_ref, tr.shape)
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        if not self.differential:
            self.w = {k: np.array(d[f"w/{k}"]) for k in self.w}
            return
        for k, (a, b) in self.pairs.items():
            for side, dev in (("plus", a), ("minus", b)):
                pre = f"{side}/{k}/"
                dev.load_state_dict({n[len(pre) :]: v for n, v in d.items() if n.startswith(pre)})
        self._ir = {}
        for n, g_ref in d.items():  # redo the last exact IR solves (deterministic)
            if n.startswith("ir/"):
                _, k, side = n.split("/")
                g_ref = np.asarray(g_ref, dtype=np.float64)
                P = self._padded(g_ref)
                dec = decoupled_conductance(P.swapaxes(1, 2), self.lines).swapaxes(1, 2)
                tr = _IRTrack(g_ref.shape, P, *self._real_sizes(g_ref.shape))
                self._ir[(k, int(side))] = tr
                for a in range(P.shape[0]):
                    for b in range(P.shape[2]):
                        self._solve_tile(tr, P, dec, a, b)
