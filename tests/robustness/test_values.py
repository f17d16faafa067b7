"""Bad values are refused where they are read: NaN, inf, -inf, out-of-range and wrongly typed
values of every class of field (learning rates, widths, gains, betas, seeds, checkpoint
minutes, profile device/converter/array fields, circuit fields), through a study file, a
``--set`` flag, a circuit file and a profile file; wrong structures (``sweep = 5``), devices
a backend ignores or the machine lacks, circuits that do not fit the data, and sizes that
cannot fit in memory. Each: exit 2, one line naming the file and the key, nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from analogebl.catalog import find_entry
from analogebl.circuit import load_circuit
from analogebl.errors import ConfigError
from analogebl.memory import available_bytes, check_run_memory, estimate_run, format_bytes
from analogebl.spec import INT64_MAX, Range, RunSpec
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

GOOD = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 64\ntest_subset = 64\nbatch_size = 32\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n[optimizer]\nlr = 0.1\n'
)
NONFINITE = {"nan": "nan", "inf": "inf", "-inf": "-inf"}


def _refused(root: Path, argv: list[str], words: list[str], capsys, out: Path | None = None):
    """Run ``argv`` in the sandbox ``root``; assert a clean refusal naming ``words``."""
    out = out or root / "out"
    before = snapshot(root)
    outcome = run_cli(argv, capsys, cwd=root)
    assert_clean_refusal(outcome, words, before, snapshot(root), out=out, root=root)
    assert not out.exists(), "the output folder was created for a refused study"
    return outcome.err[-1]


def _study(root: Path, text: str) -> Path:
    f = root / "study.toml"
    f.write_text(text)
    return f


def _with(section: str, key: str, value: str, base: str = GOOD) -> str:
    """``base`` with ``[section] key = value`` (top level when ``section`` is empty)."""
    if not section:
        return f"{key} = {value}\n" + base
    head = f"[{section}]\n"
    if head in base:
        return base.replace(head, f"{head}{key} = {value}\n", 1)
    return base + f"{head}{key} = {value}\n"


# ---------------------------------------------------------------- study values and --set
# field class -> (section, key, an out-of-range value, a wrongly typed value)
STUDY_FIELDS = {
    "learning rate": ("optimizer", "lr", "-0.5", '"fast"'),
    "learning rate list": ("optimizer", "lr", "[0.1, 0.0, 0.1]", '["a", 0.1, 0.1]'),
    "adam learning rate": ("optimizer", "adam_lr", "0", '"a"'),
    "momentum": ("optimizer", "momentum", "1.5", '"a"'),
    "weight decay": ("optimizer", "weight_decay", "-1", "true"),
    "lr scale": ("optimizer", "lr_scale", "0", '"a"'),
    "width": ("circuit", "width", "0", '"wide"'),
    "gains": ("circuit", "gains", "[0.5, -1.0, 0.5]", '[0.5, "a", 0.5]'),
    "beta": ("rule", "beta", "0", '"a"'),
    "homeostasis": ("rule", "homeostasis", "-0.1", '"a"'),
    "checkpoint minutes": ("", "checkpoint_minutes", "0", '"often"'),
    "seed": ("", "seed", "-1", "1.5"),
    "seed too large": ("", "seed", str(2**63), str(10**30)),
    "epochs": ("", "epochs", str(2**63), "1.0"),
    "batch size": ("", "batch_size", "0", "32.0"),
}
# a non-finite value for an integer field is a wrong type (TOML nan/inf are floats)
BAD_KINDS = ("nan", "inf", "-inf", "out of range", "wrong type")


def _bad_value(field: str, kind: str) -> str:
    section, key, out_of_range, wrong = STUDY_FIELDS[field]
    if kind == "out of range":
        return out_of_range
    if kind == "wrong type":
        return wrong
    if field in ("learning rate list", "gains"):
        return f"[0.5, {NONFINITE[kind]}, 0.5]"
    return NONFINITE[kind]


STUDY_CASES = [(f, k) for f in STUDY_FIELDS for k in BAD_KINDS]


@pytest.mark.parametrize("field,kind", STUDY_CASES, ids=[f"{f}-{k}" for f, k in STUDY_CASES])
def test_study_file_values(field, kind, tmp_path, data_dir, capsys):
    section, key, _, _ = STUDY_FIELDS[field]
    text = "".join(line for line in GOOD.splitlines(True) if not line.startswith(f"{key} = "))
    f = _study(tmp_path, _with(section, key, _bad_value(field, kind), text))
    dotted = f"{section}.{key}" if section else key
    line = _refused(tmp_path, ["study", "run", str(f), "--out", "out"], [dotted], capsys)
    assert "study.toml" in line


@pytest.mark.parametrize("field,kind", STUDY_CASES, ids=[f"{f}-{k}" for f, k in STUDY_CASES])
def test_set_flag_values(field, kind, tmp_path, data_dir, capsys):
    section, key, _, _ = STUDY_FIELDS[field]
    dotted = f"{section}.{key}" if section else key
    f = _study(tmp_path, GOOD)
    argv = ["study", "run", str(f), "--out", "out", "--set", f"{dotted}={_bad_value(field, kind)}"]
    line = _refused(tmp_path, argv, [dotted], capsys)
    assert "study.toml" in line or "--set" in line


def test_a_seed_beyond_int64_is_refused_when_the_study_loads(tmp_path, data_dir, capsys):
    """Not after an epoch, at the first HDF5 write: fast, and nothing in --out."""
    f = _study(tmp_path, f"seed = {10**30}\n" + GOOD)
    t0 = time.perf_counter()
    line = _refused(tmp_path, ["study", "run", str(f), "--out", "out"], ["seed", "2**63"], capsys)
    assert time.perf_counter() - t0 < 10 and "1000000000" in line


# ---------------------------------------------------------------- structure, rules, devices
STRUCTURE = {
    "sweep = 5": ("sweep = 5\n", ["'sweep'", "table"]),
    "tiers smoke = 3": ("tiers = {smoke = 3}\n", ["tiers.smoke", "table"]),
    "per_rule = [1]": ("per_rule = [1]\n", ["'per_rule'"]),
    "per_rule table not a table": ("per_rule = {c_ep = 3}\n", ["per_rule.c_ep"]),
    "variants = 5": ("variants = 5\n", ["'variants'"]),
    "sweep axis empty": ("sweep = {seed = []}\n", ["sweep.seed", "non-empty"]),
    "tier sweep = 4": ("tiers = {smoke = {sweep = 4}}\n", ["tiers.smoke.sweep"]),
    "per_rule unknown rule": ("per_rule = {hebb = {epochs = 2}}\n", ["per_rule.hebb", "hebb"]),
    "device tpu:9 (auto)": ('device = "tpu:9"\n', ["device", "tpu:9"]),
    "device on numba": ('device = "tpu:9"\nbackend = "numba"\n', ["device"]),
    "cuda on numba": ('device = "cuda"\nbackend = "numba"\n', ["device", "numba", "CPU"]),
    "cuda on reference": ('device = "cuda:0"\nbackend = "reference"\n', ["device", "CPU"]),
    "pool on a dense circuit": (
        GOOD.replace('name = "tiny_dense"', 'name = "tiny_dense"\npool = "max"'),
        ["circuit.pool", "dense"],
    ),
}


@pytest.mark.parametrize("case", list(STRUCTURE))
def test_study_structure_rules_and_devices(case, tmp_path, data_dir, capsys):
    text, words = STRUCTURE[case]
    f = _study(tmp_path, text if text.startswith("dataset") else text + GOOD)
    line = _refused(tmp_path, ["study", "run", str(f), "--out", "out"], words, capsys)
    assert "study.toml" in line


def test_cuda_without_cuda_is_one_clear_error(tmp_path, data_dir, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    f = _study(tmp_path, GOOD)
    _refused(
        tmp_path,
        ["study", "run", str(f), "--out", "out", "--device", "cuda"],
        ["device", "cuda", "not available"],
        capsys,
    )


# ---------------------------------------------------------------- circuit files
TINY = Path(find_entry("circuits", "tiny_dense")).read_text()
# field -> (text with VALUE in its place, dotted key, out-of-range value, wrongly typed value)
CIRCUIT_FIELDS = {
    "hidden gain": (
        TINY.replace("units = 32\ngain = 0.5", "units = 32\ngain = VALUE"),
        "hidden[0].gain",
        "0",
        '"a"',
    ),  # fmt: skip
    "output gain": (
        TINY.replace("[output]\ngain = 0.5", "[output]\ngain = VALUE"),
        "output.gain",
        "-1",
        "[0.5]",
    ),  # fmt: skip
    "bias gain": (
        TINY.replace("num_classes = 10", "num_classes = 10\nbias_gain = VALUE"),
        "defaults.bias_gain",
        "0",
        '"a"',
    ),  # fmt: skip
    "width": (
        TINY.replace("num_classes = 10", "num_classes = 10\nwidth = VALUE"),
        "defaults.width",
        "-2",
        "true",
    ),  # fmt: skip
    "units": (TINY.replace("units = 32", "units = VALUE"), "hidden[0].units", "0", "32.5"),
}
CIRCUIT_CASES = [(f, k) for f in CIRCUIT_FIELDS for k in BAD_KINDS]


@pytest.mark.parametrize("field,kind", CIRCUIT_CASES, ids=[f"{f}-{k}" for f, k in CIRCUIT_CASES])
def test_circuit_file_values(field, kind, tmp_path, data_dir, capsys):
    text, key, out_of_range, wrong = CIRCUIT_FIELDS[field]
    value = {"out of range": out_of_range, "wrong type": wrong}.get(kind) or NONFINITE[kind]
    (tmp_path / "c.toml").write_text(text.replace("VALUE", value))
    f = _study(tmp_path, GOOD.replace('"tiny_dense"', f'"{tmp_path / "c.toml"}"'))
    _refused(tmp_path, ["study", "run", str(f), "--out", "out"], ["c.toml", key], capsys)


CONV = (
    "[input]\nchannels = 1\nsize = [28, 28]\n[defaults]\nnum_classes = 10\n"
    '[[hidden]]\ncoupling = "conv"\nchannels = 4\nHIDDEN0\n'
    '[[hidden]]\ncoupling = "conv"\nchannels = 4\nHIDDEN1\n[output]\n'
)
SHAPES = {
    "kernel larger than the image": (
        CONV.replace("HIDDEN0", "kernel_size = 99\npadding = 1").replace("HIDDEN1", ""),
        ["hidden[0].kernel_size", "does not fit"],
    ),
    "kernel shrinks a layer to 0": (
        CONV.replace("HIDDEN0", "kernel_size = 15\npadding = 0").replace(
            "HIDDEN1", "kernel_size = 8\npadding = 0"
        ),
        ["hidden[1].kernel_size"],
    ),
    "pool that does not divide": (
        CONV.replace("HIDDEN0", "padding = 0").replace("HIDDEN1", "padding = 0"),
        ["hidden[1].pool", "even"],
    ),
    "negative padding": (
        CONV.replace("HIDDEN0", "padding = -3").replace("HIDDEN1", ""),
        ["hidden[0].padding"],
    ),
    "input = 3": ("input = 3\n" + TINY.replace("[input]\nfeatures = 784\n", ""), ["'input'"]),
    "hidden = [3]": ("hidden = [3]\n[input]\nfeatures = 784\n", ["'hidden'"]),
    "input size not a pair": (CONV.replace("[28, 28]", "[28]"), ["input.size"]),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_circuit_shapes_are_refused_at_load(case, tmp_path, data_dir, capsys):
    text, words = SHAPES[case]
    (tmp_path / "c.toml").write_text(text.replace("HIDDEN0", "").replace("HIDDEN1", ""))
    f = _study(tmp_path, GOOD.replace('"tiny_dense"', f'"{tmp_path / "c.toml"}"'))
    _refused(tmp_path, ["study", "run", str(f), "--out", "out"], ["c.toml", *words], capsys)


def test_a_circuit_whose_input_does_not_fit_the_dataset(tmp_path, data_dir, capsys):
    (tmp_path / "c.toml").write_text(TINY.replace("features = 784", "features = 100"))
    f = _study(tmp_path, GOOD.replace('"tiny_dense"', f'"{tmp_path / "c.toml"}"'))
    words = ["c.toml", "input.features", "784"]
    _refused(tmp_path, ["study", "run", str(f), "--out", "out"], words, capsys)


def test_circuit_input_must_fit_the_dataset(tmp_path):
    (tmp_path / "c.toml").write_text(TINY.replace("features = 784", "features = 100"))
    with pytest.raises(ConfigError) as e:
        load_circuit(str(tmp_path / "c.toml"), input_shape=(1, 28, 28))
    assert "c.toml" in str(e.value) and "input.features" in str(e.value)
    conv = load_circuit("tiny_conv", input_shape=(1, 8, 8))  # fits
    assert conv.layers[0].shape == (1, 8, 8)
    with pytest.raises(ConfigError, match="input.size"):
        load_circuit("tiny_conv", input_shape=(1, 28, 28))


# ---------------------------------------------------------------- profile files
REF = Path(find_entry("hardware_profiles", "reram_like")).read_text()
HEAD = '[profile]\nname = "p"\n'
# table.key -> (out-of-range value, wrongly typed value); inf passes where it means "off"
PROFILE_FIELDS = {
    "energy.v_read_V": ("0", '"0.1 V"'),
    "read.noise_rel": ("-0.01", "true"),
    "read.noise_abs_S": ("-1e-9", '"a"'),
    "update.a_norm_up": ("0", '"a"'),
    "update.step_scale_up": ("0", '"a"'),
    "update.asymmetry": ("2.0", '"a"'),
    "update.refresh_at": ("1.5", '"a"'),
    "variability.c2c_std": ("-0.1", '"a"'),
    "faults.stuck_prob": ("1.5", '"a"'),
    "retention.drift_t0_sec": ("0", '"a"'),
    "array.r_wire_ohm": ("-1", '"a"'),
    "dac.v_max_V": (None, '"a"'),
    "neuron.amplifier_gain": ("0", '"a"'),
    "nudge.i_max_A": ("-1", '"a"'),
    "rng.device_seed": (str(2**63), "1.5"),
    "adc.bits": ("33", "8.0"),
}
INF_ALLOWED = {"update.a_norm_up", "nudge.i_max_A"}  # inf = the effect is off
PROFILE_CASES = [
    (k, kind)
    for k in PROFILE_FIELDS
    for kind in BAD_KINDS
    if not (kind == "inf" and k in INF_ALLOWED)
    and not (kind == "out of range" and PROFILE_FIELDS[k][0] is None)
]


def _profile_value(key: str, kind: str) -> str:
    out_of_range, wrong = PROFILE_FIELDS[key]
    return {"out of range": out_of_range, "wrong type": wrong}.get(kind) or NONFINITE[kind]


@pytest.mark.parametrize("key,kind", PROFILE_CASES, ids=[f"{k}-{v}" for k, v in PROFILE_CASES])
def test_profile_file_values(key, kind, tmp_path, capsys):
    table, name = key.split(".")
    (tmp_path / "p.toml").write_text(HEAD + f"[{table}]\n{name} = {_profile_value(key, kind)}\n")
    _refused(tmp_path, ["profile", "show", str(tmp_path / "p.toml")], ["p.toml", key], capsys)


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("how", ["study file", "--profile", "--set profile"])
def test_profile_values_through_a_study(how, kind, tmp_path, data_dir, capsys):
    value = {"out of range": "-0.5", "wrong type": '"x"'}.get(kind) or NONFINITE[kind]
    (tmp_path / "p.toml").write_text(REF.replace("noise_rel = 0.01", f"noise_rel = {value}"))
    p = str(tmp_path / "p.toml")
    text = f'profile = "{p}"\n' + GOOD if how == "study file" else GOOD
    argv = ["study", "run", str(_study(tmp_path, text)), "--out", "out"]
    argv += {"--profile": ["--profile", p], "--set profile": ["--set", f"profile={p}"]}.get(how, [])
    _refused(tmp_path, argv, ["p.toml", "read.noise_rel"], capsys)


def test_infinite_means_off_where_the_schema_says_so(tmp_path, capsys):
    (tmp_path / "p.toml").write_text(HEAD + "[update]\na_norm_up = inf\n[nudge]\ni_max_A = inf\n")
    assert run_cli(["profile", "show", str(tmp_path / "p.toml")], capsys).rc == 0


def test_inheritance_cycle_with_names_unlike_the_files(tmp_path, capsys):
    """``[profile] name``s differ from the file names: found by file, no RecursionError."""
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'[profile]\nname = "first"\nextends = "{b}"\n')
    b.write_text(f'[profile]\nname = "second"\nextends = "{a}"\n')
    line = _refused(tmp_path, ["profile", "show", str(a)], ["cycle", "profile.extends"], capsys)
    assert "a.toml -> b.toml -> a.toml" in line


# ---------------------------------------------------------------- memory
@pytest.mark.parametrize("width", ["2e4", "1e300"])
def test_a_width_that_needs_terabytes_is_refused_fast(width, tmp_path, data_dir, capsys):
    f = _study(tmp_path, GOOD.replace('"tiny_dense"', f'"tiny_dense"\nwidth = {width}'))
    t0 = time.perf_counter()
    line = _refused(tmp_path, ["study", "run", str(f), "--out", "out"],
                    ["circuit.width", "B of memory", "available"], capsys)  # fmt: skip
    assert time.perf_counter() - t0 < 10, "refused only after allocating"
    assert "study.toml" in line


def test_a_model_hidden_size_that_needs_terabytes_is_refused(tmp_path, data_dir, capsys):
    text = GOOD.replace('[circuit]\nname = "tiny_dense"\n', '[model]\nname = "looped_mlp"\n'
                        f"hidden = {10**9}\n")  # fmt: skip
    f = _study(tmp_path, text)
    words = ["study.toml", "model.hidden", "available"]
    _refused(tmp_path, ["study", "run", str(f), "--out", "out"], words, capsys)


@pytest.mark.parametrize("depth", [10**8, 10**15])
def test_a_depth_that_cannot_fit_is_refused_before_layers_exist(depth, tmp_path, capsys):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="circuit.depth") as e:
        load_circuit("tiny_dense", depth=depth)
    assert "available" in str(e.value) and time.perf_counter() - t0 < 2


def _spec(**values) -> RunSpec:
    flat = {"dataset": "mnist", "circuit.name": "tiny_dense", "rule.name": "c_ep",
            "optimizer.name": "sgd", "optimizer.lr": 0.1, "batch_size": 32} | values  # fmt: skip
    return RunSpec.from_flat(flat, path="s.toml")


def test_memory_estimate_parts_and_refusal():
    spec = _spec()
    circuit = load_circuit("tiny_dense")
    est = estimate_run(spec, circuit)
    n_par = sum(784 * 32 + 32 * 16 + 16 * 10 for _ in [0]) + 32 + 16 + 10
    assert est.parts["parameters"] == n_par * (8 + 2 * 4)
    assert est.parts["optimizer state"] == n_par * 4  # sgd: one momentum buffer
    assert est.total < 50e6 and est.key == "eval_batch_size"  # tiny: the states dominate
    check_run_memory(spec, circuit, available=10**9)  # fits
    with pytest.raises(ConfigError) as e:
        check_run_memory(spec, circuit, available=999, path="s.toml")
    msg = str(e.value)
    assert "s.toml" in msg and "eval_batch_size" in msg and "999 B is available" in msg
    wide = _spec(**{"circuit.width": 100.0})
    est = estimate_run(wide, load_circuit("tiny_dense", width=100.0))
    assert est.key == "circuit.width" and est.parts["parameters"] > est.parts["node states"]
    big = _spec(batch_size=10**9)
    with pytest.raises(ConfigError, match="batch_size"):
        check_run_memory(big, circuit, available=10**12)
    check_run_memory(big, circuit, available=10**9, n_train=64, n_eval=64)  # 64 per batch
    model = _spec(**{"circuit.name": None, "model.name": "looped_mlp", "model.hidden": 10**7})
    with pytest.raises(ConfigError, match="model.hidden"):
        check_run_memory(model, None, n_in=784, num_classes=10)


def test_available_memory_is_read_without_psutil():
    avail = available_bytes()
    assert avail is None or avail > 0
    assert format_bytes(4.2e12) == "4.2 TB" and format_bytes(512) == "512 B"


def test_range_is_the_one_check():
    assert not Range(0.0).accepts(float("nan")) and not Range().accepts(float("inf"))
    assert Range(infinite=True).accepts(float("-inf")) and not Range().accepts(10**400)
    count = Range(1, integer=True)
    assert count.accepts(INT64_MAX) and not count.accepts(INT64_MAX + 1)
    assert not count.accepts(True) and not count.accepts(2.0)
    with pytest.raises(ConfigError, match=r"key 'k': must be a finite number in \(0, 1\]"):
        Range(0.0, 1.0, lo_open=True).check("k", 0)
