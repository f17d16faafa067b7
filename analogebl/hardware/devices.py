"""③ Device models: per-pulse conductance responses, variability, faults and drift.

One :class:`DeviceArray` holds the conductances of one tensor of devices (the G+ or G- side
of a parameter) with its per-device parameters drawn once at build time from a
device-instance generator (device-to-device variation, stuck-at faults).

Notation (``analog_devices.md`` section 3.3): ``R = g_max - g_min``, ``u = (G - G_min)/R``,
nominal step ``Delta = R / n_states``. The affine models (``constant_step``, ``linear_step``,
``soft_bounds``, ``exp_saturating``) step up by ``delta+(G) = Delta+ k+ (1 - gamma+ u)`` and
down by ``delta-(G) = Delta- k- (1 - gamma- (1 - u))``; one pulse is the affine map
``G <- q G + b``, so ``n`` pulses are ``G_n = q^n G_0 + b (1 - q^n)/(1 - q)`` in O(1)
(section 3.4). ``exp_step`` (aihwkit ExpStep) is applied pulse by pulse.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from analogebl.hardware import kernels as _kernels

__all__ = ["DeviceArray", "DeviceParams", "exp_saturating_k_gamma"]


def exp_saturating_k_gamma(a_norm: float, n_states: int) -> tuple[float, float]:
    """NeuroSim ``G(p) = B (1 - exp(-p/A)) + G_min`` as an affine step (section 2.4):
    ``gamma = 1 - exp(-1/a_norm)``, ``k = P (1 - exp(-1/(a_norm P))) / gamma``."""
    if math.isinf(a_norm):
        return 1.0, 0.0
    gamma = 1.0 - math.exp(-1.0 / a_norm)
    k = n_states * (1.0 - math.exp(-1.0 / (a_norm * n_states))) / gamma
    return k, gamma


@dataclass(frozen=True)
class DeviceParams:
    """The profile's device description, in siemens."""

    model: str
    g_min_S: float
    g_max_S: float
    n_states: int
    k_up: float = 1.0
    k_down: float = 1.0
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    asymmetry: float = 0.0
    exp: tuple[float, float, float, float, float, float] = (-1.0, 0.0, 2.5, 2.5, 0.0, 0.0)
    c2c_std: float = 0.0
    c2c_mode: str = "multiplicative"
    write_noise_std: float = 0.0
    dtod_step_std: float = 0.0
    dtod_step_lognormal: bool = False
    dtod_asymmetry_std: float = 0.0
    dtod_bounds_std: float = 0.0
    dtod_gamma_std: float = 0.0
    stuck_prob: float = 0.0
    stuck_mode: str = "random"
    stuck_on_fraction: float = 0.5
    drift_model: str = "none"
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0_sec: float = 20.0
    decay_lifetime_sec: float = 0.0
    decay_target_S: float | None = None
    prog_noise_poly_S: tuple[float, ...] = ()

    @property
    def range_S(self) -> float:
        return self.g_max_S - self.g_min_S

    @property
    def step_S(self) -> float:
        return self.range_S / self.n_states

    @property
    def continuous(self) -> bool:
        """An ``ideal`` update model: conductances are set exactly (no levels, no pulses)."""
        return self.model == "ideal"


class DeviceArray:
    """Conductances of ``shape`` devices and their fixed per-device parameters.

    ``G`` is the hidden (programmed) conductance, ``visible`` what a read sees (``G`` plus
    write noise, times the drift factor).
    """

    def __init__(self, p: DeviceParams, shape: tuple[int, ...], rng: np.random.Generator):
        self.p = p
        z = np.zeros(shape)
        d = p.step_S
        if p.dtod_step_lognormal and p.dtod_step_std > 0:
            s = math.sqrt(math.log1p(p.dtod_step_std**2))
            g = rng.lognormal(-s * s / 2, s, shape)
        else:
            g = 1.0 + p.dtod_step_std * rng.standard_normal(shape)
        r = p.dtod_asymmetry_std * rng.standard_normal(shape)
        a = p.asymmetry
        self.d_up = np.maximum(d * p.k_up * (g + r + min(a, 0.0)), 0.0)
        self.d_down = np.maximum(d * p.k_down * (g - r - max(a, 0.0)), 0.0)
        # the blind step (section 3.2): the nominal step at the reference point (u = 0 for up,
        # u = 1 for down)
        self.nominal_up = d * p.k_up * (1 + min(a, 0.0))
        self.nominal_down = d * p.k_down * (1 - max(a, 0.0))
        if p.model == "exp_step":
            ea, eb, gu_, gd_, au, ad = p.exp
            self.nominal_up *= max(1.0 - au * math.exp(gu_ * eb), 1e-12)
            self.nominal_down *= max(1.0 - ad * math.exp(-gd_ * (2.0 * ea + eb)), 1e-12)
        gs = p.dtod_gamma_std
        self.gamma_up = np.clip(p.gamma_up * (1 + gs * rng.standard_normal(shape)), 0, 1)
        self.gamma_down = np.clip(p.gamma_down * (1 + gs * rng.standard_normal(shape)), 0, 1)
        lo = p.g_min_S + p.dtod_bounds_std * p.range_S * rng.standard_normal(shape)
        hi = p.g_max_S + p.dtod_bounds_std * p.range_S * rng.standard_normal(shape)
        self.g_lo, self.g_hi = np.maximum(np.minimum(lo, hi), 0.0), np.maximum(lo, hi)
        self.stuck = rng.random(shape) < p.stuck_prob
        if self.stuck.any():
            lvl = {
                "g_min": self.g_lo,
                "g_max": self.g_hi,
                "random": self.g_lo + rng.random(shape) * (self.g_hi - self.g_lo),
                "mixed": np.where(rng.random(shape) < p.stuck_on_fraction, self.g_hi, self.g_lo),
            }[p.stuck_mode]
            self.stuck_level = np.where(self.stuck, lvl, 0.0)
            for arr in (self.d_up, self.d_down):
                arr[self.stuck] = 0.0
        else:
            self.stuck_level = z.copy()
        if p.drift_model == "power_law":
            self.nu = np.maximum(p.drift_nu + p.drift_nu_std * rng.standard_normal(shape), 0)
        else:
            self.nu = z.copy()  # pcm_nandakumar2019 draws nu from G at programming time
        self._nu_rng_draw = rng.standard_normal(shape)
        self.age_sec = z.copy()
        self.G = np.clip(z + p.g_min_S, self.g_lo, self.g_hi)
        self.noise = z.copy()  # write noise of the last programming
        self.drift = np.ones(shape)
        self._affine_memo: dict[bool, tuple[np.ndarray, np.ndarray]] = {}  # _affine
        self._fix_stuck()

    # ------------------------------------------------------------------ state
    def _fix_stuck(self) -> None:
        if self.stuck.any():
            self.G = np.where(self.stuck, self.stuck_level, self.G)
            self.noise[self.stuck] = 0.0

    @property
    def visible(self) -> np.ndarray:
        """What a read sees: ``(G + write noise) * drift``, ``G`` for stuck devices."""
        v = (self.G + self.noise) * self.drift
        return np.where(self.stuck, self.stuck_level, v) if self.stuck.any() else v

    def prog_noise_std_S(self, G: np.ndarray) -> np.ndarray:
        """Programming-noise std ``sigma(G) = sum_i c_i (G / g_max)^i`` (S, floored at 0)."""
        x = np.asarray(G, dtype=np.float64) / self.p.g_max_S
        sd = np.zeros_like(x)
        for c in reversed(self.p.prog_noise_poly_S):  # Horner
            sd = sd * x + c
        return np.maximum(sd, 0.0)

    def program(self, target_S: np.ndarray, rng: np.random.Generator | None = None) -> None:
        """Set ``G`` to the nearest nominal level of ``target`` inside the device bounds
        (initial programming; levels ``g_min + m Delta``), then add the programming noise
        ``G <- clip(G + sigma(G) xi, g_lo, g_hi)``, ``xi ~ N(0, 1)`` from ``rng``, when the
        profile has ``prog_noise_poly_S`` (:meth:`prog_noise_std_S`)."""
        p = self.p
        t = np.clip(target_S, self.g_lo, self.g_hi)
        if not p.continuous:
            t = p.g_min_S + np.rint((t - p.g_min_S) / p.step_S) * p.step_S
        self.G = np.clip(t, self.g_lo, self.g_hi)
        if p.prog_noise_poly_S:
            if rng is None:
                raise ValueError("programming noise needs an rng")
            xi = rng.standard_normal(self.G.shape)
            self.G = np.clip(self.G + self.prog_noise_std_S(self.G) * xi, self.g_lo, self.g_hi)
        self.age_sec[...] = 0.0
        self.drift[...] = 1.0
        self._draw_nu()
        self._fix_stuck()

    # ------------------------------------------------------------------ pulses
    def _affine(self, up: bool) -> tuple[np.ndarray, np.ndarray]:
        """One pulse is ``G <- q G + b`` (section 3.4); computed once per direction (it
        reads only the fixed draws)."""
        hit = self._affine_memo.get(up)
        if hit is None:
            rng_ = np.maximum(self.g_hi - self.g_lo, 1e-300)
            if up:
                c = self.d_up * self.gamma_up / rng_
                hit = 1.0 - c, self.d_up + c * self.g_lo
            else:
                e = self.d_down * self.gamma_down / rng_
                hit = 1.0 - e, -self.d_down * (1.0 - self.gamma_down) + e * self.g_lo
            self._affine_memo[up] = hit
        return hit

    def _exp_step(self, up: bool, G: np.ndarray) -> np.ndarray:
        a, b, g_up, g_down, A_up, A_down = self.p.exp
        u = (G - self.g_lo) / np.maximum(self.g_hi - self.g_lo, 1e-300)
        z = 2.0 * a * (2.0 * u) / 2.0 + b  # fit's weight range [0, 2]: w = 2u
        if up:
            return self.d_up * np.maximum(0.0, 1.0 - A_up * np.exp(g_up * z))
        return self.d_down * np.maximum(0.0, 1.0 - A_down * np.exp(-g_down * z))

    def pulse(
        self,
        n: np.ndarray,
        up: bool,
        rng: np.random.Generator,
        per_pulse: bool = False,
        fast: bool = True,
    ) -> None:
        """Apply ``n`` (integer array) pulses in one direction to every device.

        Affine models use the O(1) formula with one Gaussian per device for the
        cycle-to-cycle noise (multiplicative: ``std = sigma sqrt(n) * last mean step``;
        additive: ``std = sigma Delta sqrt((1 - q^2n)/(1 - q^2))``), then clip once;
        ``per_pulse=True`` (and ``exp_step``) loops pulse by pulse, clipping after each.
        ``fast``: the affine formula as one numba pass
        (:func:`analogebl.hardware.kernels.pulse_affine`, the same numbers and draws);
        ``False``: the NumPy expressions below.
        """
        n = np.asarray(n)
        hit = (n > 0) & ~self.stuck
        if not hit.any():
            return
        p = self.p
        s = 1.0 if up else -1.0
        if per_pulse or p.model == "exp_step":
            G = self.G.copy()
            for t in range(int(n.max())):
                act = hit & (n > t)
                if p.model == "exp_step":
                    step = self._exp_step(up, G)
                else:
                    q, b = self._affine(up)
                    step = np.abs(q * G + b - G)
                if p.c2c_mode == "multiplicative":
                    dn = step * (1.0 + p.c2c_std * rng.standard_normal(G.shape))
                else:
                    dn = step + p.c2c_std * p.step_S * rng.standard_normal(G.shape)
                G = np.where(act, np.clip(G + s * dn, self.g_lo, self.g_hi), G)
            self.G = G
        elif fast:
            q, b = self._affine(up)
            shape = self.G.shape

            def flat(a, dtype=None):
                return np.ascontiguousarray(np.broadcast_to(a, shape), dtype=dtype).reshape(-1)

            G, noise, age, drift = (np.empty(shape) for _ in range(4))
            _kernels.pulse_affine(
                flat(self.G), flat(n), flat(hit), flat(q), flat(b),
                float(p.c2c_std), p.c2c_mode == "multiplicative", float(p.step_S),
                flat(self.g_lo, np.float64), flat(self.g_hi, np.float64), rng, G.reshape(-1),
                float(p.write_noise_std * p.step_S), flat(self.noise), noise.reshape(-1),
                flat(self.age_sec), age.reshape(-1), flat(self.drift), drift.reshape(-1),
            )  # fmt: skip
            self.G, self.noise, self.age_sec, self.drift = G, noise, age, drift
            if p.drift_model == "pcm_nandakumar2019":
                self._draw_nu(hit)
            return  # stuck devices are never hit: the kernel copied their level and noise
        else:
            q, b = self._affine(up)
            G0, nf = self.G, n.astype(float)
            qn = q**nf
            lin = np.abs(1.0 - q) < 1e-12
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(lin, G0 + nf * b, qn * G0 + b * (1.0 - qn) / (1.0 - q))
                if p.c2c_mode == "multiplicative":
                    last = np.abs(
                        (q - 1.0) * (q ** np.maximum(nf - 1, 0)) * G0
                        + b * q ** np.maximum(nf - 1, 0)
                    )
                    std = p.c2c_std * np.sqrt(nf) * last
                else:
                    q2 = q * q
                    std = (
                        p.c2c_std
                        * p.step_S
                        * np.sqrt(np.where(np.abs(1 - q2) < 1e-12, nf, (1 - qn * qn) / (1 - q2)))
                    )
            if p.c2c_std > 0:
                mean = mean + std * rng.standard_normal(G0.shape)
            self.G = np.where(hit, np.clip(mean, self.g_lo, self.g_hi), G0)
        if p.write_noise_std > 0:
            fresh = p.write_noise_std * p.step_S * rng.standard_normal(self.G.shape)
            self.noise = np.where(hit, fresh, self.noise)
        self.age_sec = np.where(hit, 0.0, self.age_sec)
        self.drift = np.where(hit, 1.0, self.drift)
        if p.drift_model == "pcm_nandakumar2019":
            self._draw_nu(hit)
        self._fix_stuck()

    def write(self, dg_S: np.ndarray) -> None:
        """A continuous device (:attr:`DeviceParams.continuous`) moves by ``dG`` exactly:
        ``G <- clip(G + dG, g_lo, g_hi)`` where ``dG != 0`` (stuck devices stay); a written
        device restarts its drift clock."""
        hit = (np.asarray(dg_S) != 0) & ~self.stuck
        if not hit.any():
            return
        self.G = np.where(hit, np.clip(self.G + dg_S, self.g_lo, self.g_hi), self.G)
        self.age_sec = np.where(hit, 0.0, self.age_sec)
        self.drift = np.where(hit, 1.0, self.drift)
        if self.p.drift_model == "pcm_nandakumar2019":
            self._draw_nu(hit)
        self._fix_stuck()

    # ------------------------------------------------------------------ drift
    def _draw_nu(self, where: np.ndarray | None = None) -> None:
        if self.p.drift_model != "pcm_nandakumar2019":
            return
        x = np.log(np.maximum(self.G, 1e-30) / self.p.g_max_S)
        mu = np.clip(-0.0155 * x + 0.0244, 0.049, 0.1)
        sd = np.clip(-0.0125 * x - 0.0059, 0.008, 0.045)
        nu = np.maximum(mu + sd * self._nu_rng_draw, 0.0)
        self.nu = nu if where is None else np.where(where, nu, self.nu)

    def leak(self, seconds: float) -> None:
        """Exponential retention loss over ``seconds``: the programmed conductance relaxes
        toward the reset level, ``G <- G_r + (G - G_r) exp(-seconds / tau)`` with
        ``tau = decay_lifetime_sec`` and ``G_r = decay_target_S`` (``g_min`` without one),
        clipped to the device bounds; stuck devices keep their level. No-op when ``tau = 0``."""
        tau = self.p.decay_lifetime_sec
        if tau <= 0 or seconds <= 0:
            return
        target = self.p.g_min_S if self.p.decay_target_S is None else self.p.decay_target_S
        G = target + (self.G - target) * math.exp(-seconds / tau)
        self.G = np.clip(G, self.g_lo, self.g_hi)
        self._fix_stuck()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: the exponential leak (:meth:`leak`), then drift,
        ``G_read = G (t / t0)^-nu`` with ``t = age + t0``."""
        self.leak(seconds)
        if self.p.drift_model == "none" or seconds <= 0:
            return
        self.age_sec = self.age_sec + seconds
        self.drift = self._drift_factor()

    def _drift_factor(self) -> np.ndarray:
        """``(t / t0)^-nu`` with ``t = age + t0``: the drift since the device was last
        programmed (programming restarts the clock and draws ``nu``), in closed form, so a
        checkpoint need not keep it."""
        if self.p.drift_model == "none":
            return np.ones_like(self.age_sec)
        t0 = self.p.drift_t0_sec
        return ((self.age_sec + t0) / t0) ** (-self.nu)

    # ------------------------------------------------------------------ checkpoints
    #: what updates, leaks and drift change: saved in a checkpoint (the drift factor is a
    #: function of ``age_sec`` and ``nu``, :meth:`_drift_factor`)
    _MUTABLE = ("G", "noise", "age_sec", "nu")
    #: the per-device draws made once at construction from the device rng: a restart
    #: draws them again from the same seed, so a checkpoint keeps only their fingerprint
    _FIXED = (
        "d_up",
        "d_down",
        "gamma_up",
        "gamma_down",
        "g_lo",
        "g_hi",
        "stuck",
        "stuck_level",
        "_nu_rng_draw",
    )

    def fixed_fingerprint(self) -> np.ndarray:
        """SHA-256 (32 bytes, uint8) of the fixed per-device draws (:attr:`_FIXED`)."""
        h = hashlib.sha256()
        for k in self._FIXED:
            a = np.ascontiguousarray(getattr(self, k))
            h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return np.frombuffer(h.digest(), dtype=np.uint8).copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        """The mutable state and the fingerprint of the fixed draws (a run file under a
        profile stays small: 4 arrays per device tensor instead of 14)."""
        out = {k: np.array(getattr(self, k)) for k in self._MUTABLE}
        out["fixed_sha256"] = self.fixed_fingerprint()
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`. A checkpoint written before the fingerprint (it holds
        the fixed draws themselves) is restored as it is.

        Raises
        ------
        ValueError
            The fixed draws of this array (made from the run's device seed) are not those
            the checkpoint was written with: another profile, seed or device model.
        """
        if all(k in d for k in self._FIXED):
            for k in self._FIXED:
                setattr(self, k, np.array(d[k]))
            self._affine_memo = {}  # computed from the fixed draws
        elif "fixed_sha256" in d:
            if not np.array_equal(np.asarray(d["fixed_sha256"]), self.fixed_fingerprint()):
                raise ValueError(
                    "the devices' fixed per-device draws differ from the checkpoint's "
                    "(another hardware profile, device seed or device model)"
                )
        else:
            raise ValueError("a device checkpoint needs fixed_sha256 or the fixed draws")
        for k in self._MUTABLE:
            setattr(self, k, np.array(d[k]))
        self.drift = np.array(d["drift"]) if "drift" in d else self._drift_factor()
