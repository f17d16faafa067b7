"""Is a run file's record fit to resume *this* run? Checked before anything is restored.

A resume reads a file a crash, an older version or a person may have left in any state, so
nothing in it is trusted blindly. :func:`check_record` checks the record against the run's
plan (epochs, batches per epoch, the data files read now); :func:`check_checkpoint` checks
every checkpoint array, scalar and random-generator state against the freshly built
:class:`~analogebl.training.Trainer`. Either raises one :class:`~analogebl.errors.ConfigError`
naming the run file and the entry (``checkpoint/params/W1``, ``metrics/seconds``, ...); the
file is left as it is.

What a checkpoint must hold (every checkpoint is written after at least one step):

* ``params/*``, ``model/*`` and the updater's own arrays (``hw/*``): exactly the entries,
  shapes and dtypes of the trainer's :meth:`~analogebl.training.Trainer.state_dict`;
* ``opt/*``: exactly the entries a step of the optimizer creates (a step of a copy of it on
  copies of the parameters), unless the updater never steps the optimizer;
* ``warm/*``: for a crossbar circuit one state per layer (``(batch, *layer shape)``, one
  batch size for all), for a recurrent model none;
* ``hwnoise/*``: optional, each the shape and dtype of the parameter it names;
* finite values everywhere (NaN only in a running sum of a metric the network leaves
  undefined, such as the energy of a model without one); the running sums an epoch needs
  when the checkpoint lies inside it; the optimizer's and updater's counters; random-generator
  states of the kinds (bit generator, layout) the updater holds.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np

from analogebl.errors import ConfigError
from analogebl.training.support import flatten

__all__ = ["REQUIRED_METRICS", "check_checkpoint", "check_record", "planned_arrays"]

#: Metrics every finished epoch records (what a resumed run's results are built from).
REQUIRED_METRICS = ("epoch", "train_error", "train_cost", "test_error", "seconds")
# running sums a checkpoint inside an epoch must carry (Trainer.fit)
_EPOCH_SUMS = ("n", "steps", "m_cost", "m_error", "m_energy", "m_residual")
_REMEDY = (
    "the file is left as it is: restore it from a copy, delete it to start the run over, "
    "or choose another --out"
)


def _refuse(record, key: str, message: str) -> ConfigError:
    return ConfigError(f"{message}; {_REMEDY}", path=record.path, key=key)


# ---------------------------------------------------------------------- the record
def check_record(record, *, epochs: int, batches: int, data_files: str | None = None) -> None:
    """Check a run file's ``record`` (:class:`~analogebl.recording.RunRecord`) against the
    plan of the run about to resume it.

    Parameters
    ----------
    record : RunRecord
        What the earlier attempt left (read with its checkpoint).
    epochs : int
        Epochs the run plans.
    batches : int
        Batches per epoch.
    data_files : str, optional
        The fingerprint of the data files read now (``/meta`` attribute ``data_files``, a
        JSON object ``{name: [size, md5]}``); compared with the record's when both have one.

    Raises
    ------
    ConfigError
        Metrics of different lengths or without the per-epoch essentials; more epochs
        recorded than planned; epochs recorded (or the run marked complete) but no
        checkpoint; a checkpoint epoch or step outside the plan or disagreeing with the
        metrics; running sums a checkpoint inside an epoch needs missing or not finite; a
        data file that differs from the one the run started with.
    """
    n = _check_metrics(record, epochs)
    ck = record.checkpoint
    complete = record.complete
    if ck is None:
        if n or complete:
            raise _refuse(
                record,
                "checkpoint",
                f"is missing but {n} finished epoch(s) are recorded in /metrics"
                + (" and the run is marked complete" if complete else "")
                + ": resuming would start over and append to the old metrics",
            )
    else:
        _check_position(record, ck, n, epochs, batches)
        _check_sums(record, ck)
    if complete and n != epochs:
        raise _refuse(
            record, "meta/complete", f"is true but {n} of {epochs} planned epochs are recorded"
        )
    if not complete and ck is not None and ck.epoch == epochs:
        raise _refuse(
            record,
            "meta/complete",
            f"is false but the checkpoint lies after the last planned epoch ({epochs})",
        )
    if data_files:
        _check_data(record, data_files)


def _check_metrics(record, epochs: int) -> int:
    """The number of finished epochs the metrics record (all of one length)."""
    m = record.metrics
    if not m:
        return 0
    ref = "epoch" if "epoch" in m else next(iter(m))
    n = len(m[ref])
    for k, v in m.items():
        if len(v) != n:
            raise _refuse(
                record,
                f"metrics/{k}",
                f"has {len(v)} entries but metrics/{ref} has {n}: every metric holds one "
                "entry per finished epoch",
            )
    if n == 0:
        return 0
    for k in REQUIRED_METRICS:
        if k not in m:
            raise _refuse(record, f"metrics/{k}", f"is missing ({n} epochs are recorded)")
    if not np.array_equal(m["epoch"], np.arange(1, n + 1)):
        raise _refuse(record, "metrics/epoch", f"must count the finished epochs 1 to {n} in order")
    if n > epochs:
        raise _refuse(record, "metrics/epoch", f"records {n} epochs but the run plans {epochs}")
    return n


def _check_position(record, ck, n: int, epochs: int, batches: int) -> None:
    if not 0 <= ck.epoch <= epochs:
        raise _refuse(
            record, "checkpoint/epoch", f"is {ck.epoch}, outside 0..{epochs} (the planned epochs)"
        )
    last = 0 if ck.epoch == epochs else batches - 1
    if not 0 <= ck.step <= last:
        raise _refuse(
            record,
            "checkpoint/step",
            f"is {ck.step}, outside 0..{last} (batch positions of epoch {ck.epoch + 1}, "
            f"{batches} batches per epoch)",
        )
    if ck.epoch == 0 and ck.step == 0:
        raise _refuse(
            record, "checkpoint/step", "is 0 in epoch 0: a checkpoint follows at least one step"
        )
    if ck.epoch != n:
        raise _refuse(
            record,
            "checkpoint/epoch",
            f"is {ck.epoch} but /metrics records {n} finished epoch(s); they must agree",
        )


def _check_sums(record, ck) -> None:
    for k, v in ck.scalars.items():
        nan_ok = k.startswith("m_")  # a metric the network leaves undefined sums to NaN
        if not (math.isfinite(v) or (nan_ok and math.isnan(v))):
            raise _refuse(record, "checkpoint/scalars", f"'{k}' is {v}, not a finite number")
        if not nan_ok and k in ("n", "steps", "seconds", "train_seconds") and v < 0:
            raise _refuse(record, "checkpoint/scalars", f"'{k}' is {v}, below 0")
    if ck.step > 0:  # inside an epoch: its running sums continue
        for k in _EPOCH_SUMS:
            if k not in ck.scalars:
                raise _refuse(
                    record,
                    "checkpoint/scalars",
                    f"lacks '{k}', a running sum of the epoch the checkpoint lies in",
                )
        if ck.scalars["n"] <= 0 or ck.scalars["steps"] <= 0:
            raise _refuse(
                record,
                "checkpoint/scalars",
                f"counts no step ('n' {ck.scalars['n']}, 'steps' {ck.scalars['steps']}) but "
                f"the checkpoint lies at batch {ck.step + 1}",
            )


def _check_data(record, now_json: str) -> None:
    then_json = record.meta.get("data_files")
    if not then_json:
        return  # written before fingerprints were recorded: resumes as before
    try:
        then = json.loads(then_json) if isinstance(then_json, str) else None
    except ValueError:
        then = None
    if not isinstance(then, dict):
        raise _refuse(record, "meta/data_files", "is not a JSON object {file: [size, md5]}")
    now = json.loads(now_json)
    for name, was in then.items():
        is_ = now.get(name)
        if is_ != was:
            state = "is not read now" if is_ is None else f"is now size {is_[0]}, MD5 {is_[1]}"
            was_s = was if not isinstance(was, list) or len(was) != 2 else (
                f"size {was[0]}, MD5 {was[1]}"
            )  # fmt: skip
            raise _refuse(
                record,
                "meta/data_files",
                f"the dataset file {name} (in the data folder) differs from the one the run "
                f"started with ({was_s}; it {state}): resume on the original data",
            )
    extra = sorted(set(now) - set(then))
    if extra:
        raise _refuse(
            record,
            "meta/data_files",
            f"the run started without the dataset file(s) {', '.join(extra)} read now",
        )


# ---------------------------------------------------------------------- the checkpoint
def planned_arrays(trainer) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, tuple]]:
    """What a checkpoint of ``trainer`` holds after a step: ``(required, optional, batch)``,
    each ``{name: (shape, dtype)}``. ``required`` entries must all be there; ``optional``
    ones may be; ``batch`` ones (the warm state) must all be there with any leading batch
    size, one for all (``shape`` is the shape after the batch axis)."""
    from analogebl.network import Network

    net, up = trainer.net, trainer.updater
    st = trainer.state_dict()

    def spec(a) -> tuple:
        a = np.asarray(a)
        return (tuple(a.shape), a.dtype)

    params = {k: spec(v) for k, v in st["params"].items()}
    required = {f"params/{k}": v for k, v in params.items()}
    required.update({f"model/{k}": spec(v) for k, v in st["model"].items()})
    own = flatten(st["updater"]["arrays"])
    required.update({k: spec(v) for k, v in own.items() if not k.startswith("hwnoise/")})
    if up.ideal or not getattr(up, "plain", False):  # the optimizer takes the steps
        required.update({f"opt/{k}": spec(v) for k, v in _probe_optimizer(trainer).items()})
    optional = {f"hwnoise/{k}": v for k, v in params.items()} if not up.ideal else {}
    batch = {}
    if isinstance(net, Network):
        dtype = next(iter(params.values()))[1]
        batch = {f"warm/{i}": (tuple(s), dtype) for i, s in enumerate(net.plan.layer_shapes)}
    return required, optional, batch


def _probe_optimizer(trainer) -> dict[str, np.ndarray]:
    """The optimizer state one step creates: a step of a copy of the optimizer on copies of
    the parameters (K-FAC factors, which the relaxation's statistics would fill, seeded with
    identities of their shapes)."""
    net = trainer.net
    probe = copy.deepcopy(trainer.optimizer)
    now = net.parameters()
    params = {k: net.to_backend(v) for k, v in now.items()}
    grads = {k: net.to_backend(np.full(v.shape, 1e-3, dtype=v.dtype)) for k, v in now.items()}
    kfac = getattr(probe, "kfac", None)
    if kfac:
        from analogebl.learning.orthogonalize import eye_like, to_matrix

        for name in kfac:
            rows, cols = to_matrix(params[name]).shape
            probe.buf["A"][name] = eye_like(params[name], cols)
            probe.buf["G"][name] = eye_like(params[name], rows)
    with np.errstate(all="ignore"):
        probe.step(params, grads)
    return {k: net.to_numpy(v) for k, v in probe.state().items()}


def check_checkpoint(record, trainer) -> None:
    """Check ``record.checkpoint`` against ``trainer`` (freshly built for the same run):
    every array (missing, extra, shape, dtype, non-finite values), the optimizer's and
    updater's counters and the random-generator states (see the module docstring).

    Raises
    ------
    ConfigError
        Naming the run file and the first entry that does not fit.
    """
    ck = record.checkpoint
    if ck is None:
        return
    required, optional, batch = planned_arrays(trainer)
    arrays = ck.arrays
    _device_draws(record, trainer, required, arrays)
    for k, (shape, dtype) in required.items():
        if k not in arrays:
            need = _fmt(shape, dtype)
            raise _refuse(record, f"checkpoint/{k}", f"is missing (this run needs {need})")
    for k in batch:
        if k not in arrays:
            raise _refuse(
                record, f"checkpoint/{k}", "is missing (the warm-start state of every layer)"
            )
    sizes = set()
    for k, a in arrays.items():
        a = np.asarray(a)
        if k in required:
            want = required[k]
        elif k in optional:
            want = optional[k]
        elif k in batch:
            want = ((a.shape[0] if a.ndim else -1, *batch[k][0]), batch[k][1])
            sizes.add(a.shape[0] if a.ndim else -1)
        else:
            raise _refuse(record, f"checkpoint/{k}", "is not part of this run's state")
        _check_array(record, k, a, *want)
    if len(sizes) > 1 or (sizes and min(sizes) < 1):
        raise _refuse(
            record,
            "checkpoint/warm",
            f"states have batch sizes {sorted(sizes)}; all layers share one batch size >= 1",
        )
    _check_counters(record, trainer)
    _check_rng(record, trainer.updater.state_dict()["rng"], ck.rng)


def _device_draws(record, trainer, required: dict, arrays: dict) -> None:
    """The devices' fixed per-device draws: a checkpoint holds their fingerprint
    (``hw/.../fixed_sha256``), which must be the one this run draws from its seed; one
    written before the fingerprint holds the draws themselves (and the drift factor), which
    are then required in place of the fingerprint (``required`` is edited)."""
    from analogebl.hardware.devices import DeviceArray

    fresh = flatten(trainer.updater.state_dict()["arrays"]) if not trainer.updater.ideal else {}
    for k in [k for k in required if k.endswith("/fixed_sha256")]:
        pre = k[: -len("fixed_sha256")]
        if k not in arrays and f"{pre}d_up" in arrays:  # the older, self-contained layout
            del required[k]
            shape = required[f"{pre}G"][0]
            for name in (*DeviceArray._FIXED, "drift"):
                required[pre + name] = (shape, np.bool_ if name == "stuck" else np.float64)
        elif k in arrays and k in fresh:
            if not np.array_equal(np.asarray(arrays[k]), np.asarray(fresh[k])):
                raise _refuse(
                    record,
                    f"checkpoint/{k}",
                    "does not match the devices this run draws from its seed (another "
                    "hardware profile, device seed or device model wrote it)",
                )


def _fmt(shape, dtype) -> str:
    return f"shape {tuple(shape)}, dtype {np.dtype(dtype).name}"


def _check_array(record, k: str, a: np.ndarray, shape, dtype) -> None:
    key, need = f"checkpoint/{k}", _fmt(shape, dtype)
    if a.dtype != np.dtype(dtype):
        raise _refuse(record, key, f"has dtype {a.dtype.name}; this run needs {need}")
    if tuple(a.shape) != tuple(shape):
        raise _refuse(record, key, f"has shape {tuple(a.shape)}; this run needs {need}")
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        raise _refuse(record, key, "holds NaN or Inf values")


#: updater counters a later version added: an older checkpoint lacks them (restored as 0)
LATER_COUNTERS = frozenset({"hw_updates", "hw_examples", "hw_infer_J"})


def _check_counters(record, trainer) -> None:
    """The optimizer's and the updater's counters a restore reads (``t``, ``hw_pulses``...)."""
    need = {**trainer.optimizer.scalars(), **trainer.updater.state_dict()["scalars"]}
    for k in need:
        if k in LATER_COUNTERS and k not in record.checkpoint.scalars:
            continue  # added by a later version; a restore starts it at 0
        if k not in record.checkpoint.scalars:
            raise _refuse(record, "checkpoint/scalars", f"lacks the counter '{k}'")
        if record.checkpoint.scalars[k] < 0:
            raise _refuse(record, "checkpoint/scalars", f"'{k}' is below 0")


def _check_rng(record, expected: dict, got: dict) -> None:
    """Same generator names, bit generators and state layout (non-negative integers where
    the fresh state holds integers)."""
    key = "checkpoint/rng"
    for name in sorted(set(expected) | set(got)):
        if name not in got:
            raise _refuse(record, key, f"lacks the random-generator state '{name}'")
        if name not in expected:
            raise _refuse(record, key, f"holds a state '{name}' this run has no generator for")
        _same_layout(record, f"{name}", expected[name], got[name])


def _same_layout(record, where: str, want: Any, got: Any) -> None:
    key = "checkpoint/rng"
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            kind = _kind(want)
            raise _refuse(record, key, f"'{where}' does not have the layout of a {kind} state")
        for k in want:
            _same_layout(record, f"{where}.{k}", want[k], got[k])
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise _refuse(record, key, f"'{where}' does not have the layout of the state")
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            _same_layout(record, f"{where}[{i}]", w, g)
    elif isinstance(want, str):
        if got != want:
            raise _refuse(record, key, f"'{where}' is {got!r}; this run uses {want!r}")
    elif isinstance(want, int) and not isinstance(want, bool):
        if isinstance(got, bool) or not isinstance(got, int) or not 0 <= got < 2**128:
            raise _refuse(record, key, f"'{where}' is {got!r}, not an integer state word")
    elif type(got) is not type(want):
        raise _refuse(record, key, f"'{where}' is {got!r}, not a {type(want).__name__}")


def _kind(state: dict) -> str:
    return str(state.get("bit_generator", "random-generator"))
