"""The hardware-profile schema: table -> key -> (types, default, unit, meaning).

Every field of a profile TOML (``hardware_profiles/*.toml``) is declared here once; an enum is
a tuple of allowed strings; a default of ``None`` means "not set" (the effect is off).
:mod:`analogebl.hardware.profile` validates files against it and ``profile show`` prints it.
"""

from __future__ import annotations

import math
from typing import Any

from analogebl.errors import ConfigError
from analogebl.spec import Range

__all__ = ["FLOAT", "INERT", "RANGES", "SCHEMA", "check_field"]

_F, _I, _B, _S, _L = (float, int), (int,), (bool,), (str,), (list,)
FLOAT = _F  #: the type tuple of float fields (ints are accepted and converted)
_INF = math.inf

# table -> key -> (types, default, unit, meaning); enums are tuples of allowed strings
SCHEMA: dict[str, dict[str, tuple]] = {
    "conductance": {
        "mapping": (
            ("ideal_signed", "differential"),
            "ideal_signed",
            "",
            "w = (G+ - G-)/g_unit (differential) or no physical constraint",
        ),
        "g_min_S": (_F, -_INF, "S", "lowest programmable conductance of one device"),
        "g_max_S": (_F, _INF, "S", "highest programmable conductance of one device"),
    },
    "update": {
        "model": (
            ("ideal", "constant_step", "linear_step", "soft_bounds", "exp_saturating", "exp_step"),
            "ideal",
            "",
            "per-pulse response (section 3.3)",
        ),
        "rule": (
            ("optimizer", "plain"),
            "optimizer",
            "",
            "optimizer: the optimizer's dW (momentum, decay) becomes pulses; plain: "
            "dW = -lr * contrast only (hardware-realistic)",
        ),
        "n_states": (_I, None, "", "nominal pulses from g_min to g_max (absent: continuous)"),
        "step_scale_up": (_F, 1.0, "", "up-step at u = 0 in units of the nominal step"),
        "step_scale_down": (_F, 1.0, "", "down-step at u = 1 in units of the nominal step"),
        "gamma_up": (_F, 0.0, "", "linear-step slope of the up-step (1 = soft bound)"),
        "gamma_down": (_F, 0.0, "", "linear-step slope of the down-step"),
        "a_norm_up": (_F, _INF, "", "NeuroSim A/P_max of the up response"),
        "a_norm_down": (_F, _INF, "", "NeuroSim A/P_max of the down response"),
        "asymmetry": (_F, 0.0, "", "a > 0 shrinks down steps by (1 - a), a < 0 up steps"),
        "exp_a": (_F, -1.0, "", "exp_step shape a"),
        "exp_b": (_F, 0.0, "", "exp_step shape b"),
        "exp_gamma_up": (_F, 2.5, "", "exp_step gamma+"),
        "exp_gamma_down": (_F, 2.5, "", "exp_step gamma-"),
        "exp_A_up": (_F, 0.0, "", "exp_step A+"),
        "exp_A_down": (_F, 0.0, "", "exp_step A-"),
        "rounding": (
            ("stochastic", "nearest", "truncate", "none"),
            "none",
            "",
            "pulse-count rounding",
        ),
        "max_pulses": (_I, None, "", "cap on pulses per update (absent: no cap)"),
        "unidirectional": (_B, False, "", "potentiation only, pair refreshed (PCM)"),
        "refresh_at": (_F, 0.9, "frac", "refresh a pair when a device passes this of its range"),
        "reset_g_rel": (_F, 0.0, "frac", "reset level (fraction of the range above g_min)"),
        "reset_std_rel": (_F, 0.0, "frac", "spread of the reset level"),
    },
    "variability": {
        "c2c_std": (_F, 0.0, "", "cycle-to-cycle std per pulse (multiplicative or in steps)"),
        "c2c_mode": (("multiplicative", "additive"), "multiplicative", "", "c2c noise form"),
        "write_noise_std": (_F, 0.0, "", "visible G noise per programming, in steps"),
        "dtod_step_std": (_F, 0.0, "rel", "device-to-device spread of the step size"),
        "dtod_step_lognormal": (_B, False, "", "log-normal step spread"),
        "dtod_asymmetry_std": (_F, 0.0, "rel", "device-to-device up/down bias spread"),
        "dtod_bounds_std": (_F, 0.0, "frac", "device-to-device spread of g_min/g_max"),
        "dtod_gamma_std": (_F, 0.0, "rel", "device-to-device spread of the nonlinearity"),
    },
    "faults": {
        "stuck_prob": (_F, 0.0, "frac", "fraction of stuck devices"),
        "stuck_mode": (("random", "g_min", "g_max", "mixed"), "random", "", "stuck level"),
        "stuck_on_fraction": (_F, 0.5, "frac", "mixed mode: fraction stuck at g_max"),
    },
    "read": {
        "noise_rel": (_F, 0.0, "rel", "read noise std relative to G"),
        "noise_abs_S": (_F, 0.0, "S", "additive read noise std"),
        "model": (("gaussian", "pcm_1f"), "gaussian", "", "read-noise model (both Gaussian here)"),
        "resample": (
            ("per_step", "per_phase", "per_update"),
            "per_phase",
            "",
            "when read noise is redrawn",
        ),
    },
    "retention": {
        "drift_model": (
            ("none", "power_law", "pcm_nandakumar2019"),
            "none",
            "",
            "G(t) = G(t0) (t/t0)^-nu",
        ),
        "drift_nu": (_F, 0.0, "", "drift exponent (power_law)"),
        "drift_nu_std": (_F, 0.0, "", "device spread of nu"),
        "drift_t0_sec": (_F, 20.0, "s", "drift reference time"),
        "epoch_interval_sec": (_F, 0.0, "s", "simulated time between epochs (drift clock)"),
        "decay_lifetime_sec": (_F, 0.0, "s", "exponential leak toward the reset level (0 = none)"),
        "prog_noise_poly_S": (_L, [], "S", "programming-noise std sum c_i (G/g_max)^i"),
    },
    "array": {
        "tile_rows": (
            _I,
            0,
            "",
            "rows of one physical array (0: one array per coupling); a conv "
            "kernel is unrolled to (C_in k k) x C_out",
        ),
        "tile_cols": (_I, 0, "", "columns of one physical array (0: no limit)"),
        "r_wire_ohm": (_F, 0.0, "ohm", "wire resistance per cell segment, rows and columns"),
        "r_row_terminal_ohm": (_F, 0.0, "ohm", "series resistance of a row's driver"),
        "r_col_terminal_ohm": (_F, 0.0, "ohm", "series resistance into a column's sense amp"),
        "r_access_ohm": (_F, 0.0, "ohm", "access device in series with each device"),
        "i_col_max_A": (_F, 0.0, "A", "column-current limit of a tile output (0: none)"),
        "ir_refresh_tol": (
            _F,
            1e-2,
            "rel",
            "IR drop: column-current error allowed between exact solves of a tile "
            "(0.01: below the cited profiles' read noise)",
        ),
    },
    "dac": {
        "bits": (_I, 0, "", "DAC resolution: input, and node write-back with tiles (0 = exact)"),
        "v_min_V": (_F, -1.0, "V", "DAC range"),
        "v_max_V": (_F, 1.0, "V", "DAC range"),
        "stochastic_rounding": (_B, False, "", "round codes up with the fractional probability"),
        "noise_V": (_F, 0.0, "V", "input-referred DAC noise std"),
    },
    "adc": {
        "bits": (_I, 0, "", "ADC resolution: node reads, or tile outputs with tiles (0 = exact)"),
        "v_min_V": (_F, -1.0, "V", "ADC range"),
        "v_max_V": (_F, 1.0, "V", "ADC range"),
        "noise_lsb": (_F, 0.0, "LSB", "input-referred ADC noise std"),
        "stochastic_rounding": (_B, False, "", "round codes up with the fractional probability"),
    },
    "nudge": {
        "bits": (_I, 0, "", "nudge-current resolution over +-i_max_A (0 = exact)"),
        "i_max_A": (_F, _INF, "A", "nudge-current saturation (inf = none)"),
    },
    "neuron": {
        "v_low_V": (_F, 0.0, "V", "lower clamp rail (state 0)"),
        "v_high_V": (_F, 1.0, "V", "upper clamp rail (state 1)"),
        "diode_vth_V": (_F, 0.0, "V", "diode threshold: knees at v_low - vth, v_high + vth"),
        "diode_r_on_ohm": (_F, 0.0, "ohm", "conducting diode resistance (0: ideal clamp)"),
        "diode_r_off_ohm": (_F, _INF, "ohm", "reverse-biased diode resistance (inf: no leak)"),
        "amplifier_gain": (_F, 1.0, "", "node amplifier gain (slope inside the clamp)"),
    },
    "energy": {
        "v_read_V": (_F, 0.1, "V", "node voltage of state 1"),
        "t_read_sec": (_F, 0.0, "s", "settling time of one relaxation iteration"),
        "v_write_up_V": (_F, 0.0, "V", "potentiation pulse amplitude"),
        "v_write_down_V": (_F, 0.0, "V", "depression pulse amplitude"),
        "t_write_up_sec": (_F, 0.0, "s", "potentiation pulse width"),
        "t_write_down_sec": (_F, 0.0, "s", "depression pulse width"),
        "e_adc_J": (_F, 0.0, "J", "energy per ADC conversion"),
        "e_dac_J": (_F, 0.0, "J", "energy per DAC conversion"),
    },
    "rng": {"device_seed": (_I, None, "", "device-instance seed (absent: the study seed)")},
}

# fields that describe the circuit but change no simulated number
INERT = {("energy", k) for k in SCHEMA["energy"]} | {
    ("rng", "device_seed"),
    ("read", "model"),
    ("read", "resample"),
    ("neuron", "v_low_V"),
    ("neuron", "v_high_V"),
    ("retention", "drift_t0_sec"),
    ("update", "rule"),
    ("array", "ir_refresh_tol"),  # a solver tolerance: acts only with wire resistance
}

_ANY = Range()  # any finite number
_POS, _NONNEG = Range(0.0, lo_open=True), Range(0.0)
_FRAC = Range(0.0, 1.0)
_BITS = Range(0, 32, integer=True)
_COUNT, _SEED = Range(1, integer=True), Range(0, integer=True)
_OFF_AT_INF = Range(0.0, lo_open=True, infinite=True)  # > 0, inf = the effect is off

# (table, key) -> the accepted values of every numeric field (every float: finite unless the
# range says inf is "off"); a list field's range applies to each element
RANGES: dict[tuple[str, str], Range] = {
    ("conductance", "g_min_S"): Range(infinite=True),  # -inf: no lower bound (ideal_signed)
    ("conductance", "g_max_S"): Range(infinite=True),
    ("update", "n_states"): _COUNT,
    ("update", "step_scale_up"): _POS,
    ("update", "step_scale_down"): _POS,
    ("update", "gamma_up"): _ANY,
    ("update", "gamma_down"): _ANY,
    ("update", "a_norm_up"): _OFF_AT_INF,
    ("update", "a_norm_down"): _OFF_AT_INF,
    ("update", "asymmetry"): Range(-1.0, 1.0),
    ("update", "exp_a"): _ANY,
    ("update", "exp_b"): _ANY,
    ("update", "exp_gamma_up"): _ANY,
    ("update", "exp_gamma_down"): _ANY,
    ("update", "exp_A_up"): _ANY,
    ("update", "exp_A_down"): _ANY,
    ("update", "max_pulses"): _COUNT,
    ("update", "refresh_at"): Range(0.0, 1.0, lo_open=True),
    ("update", "reset_g_rel"): _FRAC,
    ("update", "reset_std_rel"): _NONNEG,
    **{
        ("variability", k): _NONNEG
        for k in SCHEMA["variability"]
        if SCHEMA["variability"][k][0] is _F
    },
    ("faults", "stuck_prob"): _FRAC,
    ("faults", "stuck_on_fraction"): _FRAC,
    ("read", "noise_rel"): _NONNEG,
    ("read", "noise_abs_S"): _NONNEG,
    ("retention", "drift_nu"): _NONNEG,
    ("retention", "drift_nu_std"): _NONNEG,
    ("retention", "drift_t0_sec"): _POS,
    ("retention", "epoch_interval_sec"): _NONNEG,
    ("retention", "decay_lifetime_sec"): _NONNEG,
    ("retention", "prog_noise_poly_S"): _ANY,
    ("array", "tile_rows"): Range(0, integer=True),
    ("array", "ir_refresh_tol"): Range(0.0, 1.0, lo_open=True),
    ("array", "tile_cols"): Range(0, integer=True),
    **{
        ("array", k): _NONNEG
        for k in (
            "r_wire_ohm",
            "r_row_terminal_ohm",
            "r_col_terminal_ohm",
            "r_access_ohm",
            "i_col_max_A",
        )
    },
    ("dac", "bits"): _BITS,
    ("dac", "v_min_V"): _ANY,
    ("dac", "v_max_V"): _ANY,
    ("dac", "noise_V"): _NONNEG,
    ("adc", "bits"): _BITS,
    ("adc", "v_min_V"): _ANY,
    ("adc", "v_max_V"): _ANY,
    ("adc", "noise_lsb"): _NONNEG,
    ("nudge", "bits"): _BITS,
    ("nudge", "i_max_A"): _OFF_AT_INF,
    ("neuron", "v_low_V"): _ANY,
    ("neuron", "v_high_V"): _ANY,
    ("neuron", "diode_vth_V"): _ANY,
    ("neuron", "diode_r_on_ohm"): _NONNEG,
    ("neuron", "diode_r_off_ohm"): Range(0.0, infinite=True),
    ("neuron", "amplifier_gain"): _POS,
    ("energy", "v_read_V"): _POS,
    ("energy", "t_read_sec"): _NONNEG,
    ("energy", "v_write_up_V"): _ANY,
    ("energy", "v_write_down_V"): _ANY,
    ("energy", "t_write_up_sec"): _NONNEG,
    ("energy", "t_write_down_sec"): _NONNEG,
    ("energy", "e_adc_J"): _NONNEG,
    ("energy", "e_dac_J"): _NONNEG,
    ("rng", "device_seed"): _SEED,
}
_HINTS = {
    ("update", "n_states"): " (leave the key out for continuous steps)",
    ("update", "max_pulses"): " (leave the key out for no cap)",
    ("dac", "bits"): " (0: exact)",
    ("adc", "bits"): " (0: exact)",
}


def check_field(table: str, key: str, v: Any, path=None) -> Any:
    """The one check of a profile field's given value: its type (an enum's strings, bool,
    str, a list of numbers) and, for numbers, its :data:`RANGES` entry (finite unless inf
    means "off"). Returns the value (a float field's int as float); a bad one raises
    :class:`ConfigError` naming ``path``, ``table.key`` and what is accepted."""
    types = SCHEMA[table][key][0]
    dotted = f"{table}.{key}"
    if isinstance(types[0], str):
        if not isinstance(v, str) or v not in types:
            raise ConfigError(
                f"must be one of {', '.join(types)}, got {v!r}", path=path, key=dotted
            )
        return v
    if types in (_B, _S):
        if not isinstance(v, types[0]):
            raise ConfigError(f"expected {types[0].__name__}, got {v!r}", path=path, key=dotted)
        return v
    rng = RANGES[(table, key)]
    if types is _L:
        if not isinstance(v, list):
            raise ConfigError(
                f"expected a list of numbers ({rng.describe()}), got {v!r}", path=path, key=dotted
            )
        return [rng.check(dotted, x, path, hint=_HINTS.get((table, key), "")) for x in v]
    return rng.check(dotted, v, path, hint=_HINTS.get((table, key), ""))
