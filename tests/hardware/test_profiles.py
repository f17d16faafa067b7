"""Hardware profiles: the catalog loads, inheritance works, bad files get one clear error."""

from __future__ import annotations

import math

import pytest

from analogebl.cli import main
from analogebl.errors import ConfigError
from analogebl.hardware import list_profiles, load_profile

SIX = ("ideal_fp32", "ideal_16bit", "reram_like", "pcm_like", "ecram_like", "pessimistic")


def test_the_six_profiles_load_with_sources():
    assert set(SIX) <= set(list_profiles())
    for name in SIX:
        p = load_profile(name)
        assert p.name == name and p.references and p.description
    assert load_profile("ideal_fp32").is_ideal
    assert not any(load_profile(n).is_ideal for n in SIX[1:])
    assert load_profile("ideal_16bit")["adc.bits"] == 16
    assert load_profile("ideal_16bit")["update.n_states"] == 65535
    # not set is None, not a sentinel number
    assert load_profile("ideal_16bit")["update.max_pulses"] is None
    assert load_profile("ideal_fp32")["rng.device_seed"] is None
    assert load_profile("ideal_fp32")["update.n_states"] is None


def test_inheritance_merges_tables_and_overrides_fields():
    child, parent = load_profile("pessimistic"), load_profile("reram_like")
    assert child.extends == "reram_like"
    assert child["array.tile_rows"] == parent["array.tile_rows"] == 128  # inherited
    assert child["update.n_states"] == 40 and parent["update.n_states"] == 128  # overridden
    assert child["variability.dtod_asymmetry_std"] == 0.01  # inherited inside a table


def test_resolved_toml_round_trips(tmp_path):
    for name in SIX:
        p = load_profile(name)
        f = tmp_path / f"{name}.toml"
        f.write_text(p.to_toml())
        q = load_profile(str(f))
        assert q.values == p.values


HEAD = '[profile]\nname = "x"\n'
DIFF = '[conductance]\nmapping = "differential"\ng_min_S = 1e-6\ng_max_S = 1e-5\n'
BAD = {
    "unknown table": (HEAD + "[magic]\nx = 1\n", "magic"),
    "unknown key": (HEAD + "[read]\nnoise = 0.1\n", "read.noise"),
    "wrong unit": (HEAD + "[conductance]\ng_min_uS = 1.0\n", "g_min_S"),
    "unit-less key": (HEAD + "[energy]\nv_read = 0.5\n", "v_read_V"),
    "wrong type": (HEAD + '[adc]\nbits = "eight"\n', "adc.bits"),
    "bool for number": (HEAD + "[read]\nnoise_rel = true\n", "read.noise_rel"),
    "g_min >= g_max": (
        HEAD + '[conductance]\nmapping = "differential"\ng_min_S = 1e-5\ng_max_S = 1e-6\n',
        "conductance.g_min_S",
    ),
    "negative noise": (HEAD + "[read]\nnoise_rel = -0.1\n", "read.noise_rel"),
    "negative c2c": (
        HEAD + DIFF + '[update]\nmodel = "constant_step"\nn_states = 10\n'
        "[variability]\nc2c_std = -1.0\n",
        "variability.c2c_std",
    ),
    "bits out of range": (HEAD + "[dac]\nbits = 40\n", "dac.bits"),
    "negative bits": (HEAD + "[adc]\nbits = -1\n", "adc.bits"),
    "bad enum": (HEAD + DIFF + '[update]\nmodel = "quantum"\n', "update.model"),
    "model without pair": (
        HEAD + '[update]\nmodel = "linear_step"\nn_states = 10\n',
        "update.model",
    ),
    "model without states": (HEAD + DIFF + '[update]\nmodel = "linear_step"\n', "update.n_states"),
    "stuck prob > 1": (HEAD + "[faults]\nstuck_prob = 1.5\n", "faults.stuck_prob"),
    "zero as no cap": (
        HEAD + DIFF + '[update]\nmodel = "linear_step"\nn_states = 10\nmax_pulses = 0\n',
        "update.max_pulses",
    ),
    "zero states": (
        HEAD + DIFF + '[update]\nmodel = "linear_step"\nn_states = 0\n',
        "update.n_states",
    ),
    "negative device seed": (HEAD + "[rng]\ndevice_seed = -3\n", "rng.device_seed"),
    "missing parent": (HEAD.replace('"x"\n', '"x"\nextends = "nope"\n'), "profile.extends"),
    "missing name": ('[profile]\ndescription = "d"\n', "profile.name"),
    "unknown profile key": (HEAD + 'author = "me"\n', "profile.author"),
    "syntax": (HEAD + "[read\n", "invalid TOML"),
    "adc range": (HEAD + "[adc]\nbits = 8\nv_min_V = 1.0\nv_max_V = 0.0\n", "adc.v_min_V"),
    "refresh_at": (HEAD + "[update]\nrefresh_at = 0.0\n", "update.refresh_at"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_profiles_give_one_error_naming_file_and_key(case, tmp_path):
    text, key = BAD[case]
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    msg = str(e.value)
    assert "bad.toml" in msg and key in msg and "\n" not in msg


def test_inheritance_cycle(tmp_path, monkeypatch):
    d = tmp_path / "hardware_profiles"
    d.mkdir()
    (d / "a.toml").write_text('[profile]\nname = "a"\nextends = "b"\n')
    (d / "b.toml").write_text('[profile]\nname = "b"\nextends = "a"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="cycle"):
        load_profile("a")


def test_cli_profile_list_and_show(capsys):
    assert main(["profile", "list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in SIX)
    assert main(["profile", "show", "reram_like"]) == 0
    out = capsys.readouterr().out
    assert "conductance.g_max_S" in out and " S " in out and "1e-05" in out
    prof = load_profile("reram_like")  # the header: description, file and every reference
    assert out.startswith(f"reram_like: {prof.description}")
    assert prof.references and all(f"  - {ref}" in out for ref in prof.references)
    assert main(["profile", "show", "nope"]) == 2


def test_infinite_defaults_are_ideal():
    p = load_profile("ideal_fp32")
    assert math.isinf(p["conductance.g_max_S"]) and p["adc.bits"] == 0


def test_every_profile_field_is_simulated_or_describes_the_circuit():
    """No field is recorded without being simulated: the schema marks none "not simulated",
    and the fields that change no number are the energy/clock, seed and labelling ones."""
    from analogebl.hardware.schema import INERT, SCHEMA

    for table, keys in SCHEMA.items():
        for key, (_, _, _, meaning) in keys.items():
            assert "not simulated" not in meaning, f"{table}.{key}"
    assert {t for t, _ in INERT} <= {
        "energy",
        "rng",
        "read",
        "neuron",
        "retention",
        "update",
        "array",
    }
    assert {k for t, k in INERT if t == "array"} == {"ir_refresh_tol"}
