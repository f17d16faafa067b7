"""Every catalog file loads; every study runs in its smoke tier; bad input exits with 2."""

import json

import pytest

from analogebl.catalog import list_entries
from analogebl.circuit import load_circuit
from analogebl.cli import main
from analogebl.errors import ConfigError
from analogebl.study import load_study, parse_set


@pytest.mark.parametrize("name", list(list_entries("circuits")))
def test_every_circuit_loads(name):
    c = load_circuit(name)
    assert c.layers[-1].size == 10


@pytest.mark.parametrize("name", list(list_entries("studies")))
def test_every_study_runs_in_smoke_tier(name, all_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANALOGEBL_DATA", all_data_dir)
    for tier in ("full", "cpu", "smoke"):
        assert load_study(name, tier).runs()
    rc = main(["study", "run", name, "--tier", "smoke", "--json", "--out", str(tmp_path)])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["study"] == name and last["tier"] == "smoke"
    runs = load_study(name, "smoke").runs()
    assert [r["run_id"] for r in last["runs"]] == [r.run_id for r in runs]
    for r in last["runs"]:
        assert r["status"] == "complete" and 0.0 <= r["test_error"] <= 1.0
        assert (tmp_path / f"{r['run_id']}.h5").is_file()
    assert (tmp_path / "study.toml").is_file()
    assert any(p.endswith("report.md") for p in last["report"])


def test_set_overrides_are_validated():
    s = load_study(
        "c_ep_fmnist",
        "cpu",
        [parse_set("circuit.width=0.25"), parse_set("epochs=3"), parse_set("rule.beta=0.1")],
    )
    assert s["circuit.width"] == 0.25 and s["epochs"] == 3 and s["rule.beta"] == 0.1
    with pytest.raises(ConfigError, match="circuit.widht"):
        parse_set("circuit.widht=0.25")
    with pytest.raises(ConfigError, match="epochs"):
        parse_set("epochs=three")
    with pytest.raises(ConfigError, match="epochs"):
        parse_set("epochs=-1")


def test_bad_study_file_names_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        'dataset = "mnist"\nepochz = 3\n[circuit]\nname = "tiny_dense"\n'
        '[rule]\nname = "c_ep"\n[optimizer]\nlr = 0.1\n'
    )
    with pytest.raises(ConfigError) as e:
        load_study(str(f))
    assert "bad.toml" in str(e.value) and "epochz" in str(e.value)


def test_cli_errors_exit_2_with_one_line(capsys):
    assert main(["study", "run", "no_such_study"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_study" in err[0]
    assert main(["study", "run", "mnist_dhn_c_ep", "--set", "nope=1"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["check", "gradients", "--rules", "c_ep,xx"]) == 2
    capsys.readouterr()
    assert main(["study", "run", "mnist_dhn_c_ep", "--tier", "huge"]) == 2
    assert "'huge'" in capsys.readouterr().err


def test_check_gradients_json(capsys):
    rc = main(
        [
            "check",
            "gradients",
            "--circuit",
            "tiny_conv",
            "--rules",
            "c_ep,p_ep,tbp",
            "--betas",
            "0.001,0.01",
            "--iterations",
            "600",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["circuit"] == "tiny_conv"
    assert set(out["rules"]) == {"c_ep", "p_ep", "tbp"}
    assert out["rules"]["c_ep"]["betas"] == [0.001, 0.01]
    assert "slope" in out["rules"]["c_ep"] and "slope" not in out["rules"]["tbp"]
    assert len(out["rules"]["tbp"]["rel_error"]) == len(out["rules"]["tbp"]["iterations"])
