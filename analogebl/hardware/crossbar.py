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
no drop. Between exact solves a device keeps its attenuation ``f = G_eff / G`` from the last one
(``G_eff ~ f G``: exact for a device's own change, missing the change of the drops the
others see); a tensor's tiles are solved again when the estimated error of that, the
G-weighted mean drop ``sum G |1 - f| / sum G`` times the largest relative change of a
line's total conductance since the solve, exceeds ``array.ir_refresh_tol`` (tested against
the exact solve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogebl.hardware.devices import DeviceArray, DeviceParams, exp_saturating_k_gamma
from analogebl.hardware.parasitics import LineResistance, effective_conductance
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
        # (name, side) -> (G at the last exact solve, G_eff / G, mean drop, G_eff)
        self._ir: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}
        self.ir_solves = 0  # exact IR-drop solves of a tensor side so far
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
        """``G_eff`` of one side of a pair: exact (:meth:`effective`) when the last solve is
        too old (module docstring), else the last solve's attenuation times ``G``."""
        if G.ndim < 2:
            return G
        ref = self._ir.get((name, side))
        if ref is not None:
            g_ref, f, drop, eff = ref
            if np.array_equal(G, g_ref):
                return eff
            if drop * self._line_change(G, g_ref) <= self.ir_tol:
                return f * G
        return self._solve_ir(name, side, G)

    def _solve_ir(self, name: str, side: int, G: np.ndarray) -> np.ndarray:
        """Exact ``G_eff`` of ``G``, kept with its attenuation and mean drop."""
        eff = self.effective(G)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(G > 0, eff / G, 1.0)
        drop = float(np.sum(G * np.abs(1.0 - f)) / max(float(np.sum(G)), 1e-300))
        self._ir[(name, side)] = (G.copy(), f, drop, eff)
        self.ir_solves += 1
        return eff

    @staticmethod
    def _line_change(G: np.ndarray, g_ref: np.ndarray) -> float:
        """Largest relative change of a line's total conductance since ``g_ref``: what moves
        the drops along the rows and columns of the unrolled array (signed sums)."""
        d = (G - g_ref).reshape(G.shape[0], -1)
        r = g_ref.reshape(G.shape[0], -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.abs(d.sum(0)) / np.maximum(r.sum(0), 1e-300)
            b = np.abs(d.sum(1)) / np.maximum(r.sum(1), 1e-300)
        return float(max(a.max(), b.max()))

    def effective(self, G: np.ndarray) -> np.ndarray:
        """The conductances one side of a pair presents to a read through its lines: a
        weight tensor's unrolled array (dense ``(in, out)``; conv ``(C_in k k, C_out)``) cut
        into tiles, each replaced by its ``G_eff``; a bias (1-D) is returned as is."""
        if G.ndim < 2 or self.lines.ideal:
            return G
        G = np.maximum(G, 0.0)  # a spread bound or write noise may dip below 0 S
        if G.ndim == 2:
            mat, block = G, self.tile_rows
        else:  # conv (C_out, C_in, k, k): rows (c, i, j), whole kernels per tile
            kk = G.shape[2] * G.shape[3]
            mat = G.reshape(G.shape[0], -1).T
            block = conv_channels_per_tile(self.tile_rows, kk) * kk
        rows, cols = mat.shape
        rb = block if block and block < rows else rows
        cb = self.tile_cols if self.tile_cols and self.tile_cols < cols else cols
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
        cross = np.einsum("ni,ij,nj->", vi, a - b, vj) / len(vi)
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
        for (k, side), (g_ref, *_) in self._ir.items():  # the last exact IR solve's G
            out[f"ir/{k}/{side}"] = g_ref
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
                self._solve_ir(k, int(side), np.asarray(g_ref, dtype=np.float64))
