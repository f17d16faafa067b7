"""How a rule's estimate becomes new weights: the :class:`Updater` strategies of a training step.

* :class:`IdealUpdater` — the optimizer writes the weights (software; ``ideal_fp32``).
* :class:`CrossbarUpdater` — the weights live on differential-pair crossbars
  (:class:`analogebl.hardware.Crossbars`). Per step the optimizer turns the estimate into a
  desired ``dW`` (the paper's recipe: momentum, weight decay) or, with
  ``update.rule = "plain"``, ``dW = -lr * g`` from the contrast alone; the crossbars realise
  it as pulses through the device response; the backend then reads the new effective weights
  back (with read noise). Random streams: device instances from ``(rng.device_seed, or the
  run's seed without one, "hardware/devices")``, pulses from ``"hardware/update"``, reads from
  ``"hardware/read"``, converter noise and stochastic rounding from ``"hardware/convert"``;
  their states are part of :meth:`Updater.state_dict`.

Both keep one nested state: ``{"arrays": {group: {name: array}}, "scalars": {...},
"rng": {...}}``; the optimizer's own state is checkpointed by the trainer.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

import numpy as np

from analogebl.hardware import Crossbars, HardwareProfile
from analogebl.hardware.quantize import nudge_current
from analogebl.hardware.tiles import conversions_per_example, node_clamps, tile_reads
from analogebl.plan import derive_rng
from analogebl.plan.effects import ReadNoise

__all__ = ["CrossbarUpdater", "IdealUpdater", "Updater"]


class Updater(Protocol):
    """The weight-writing half of a training step (see module docstring)."""

    optimizer: Any
    ideal: bool

    def begin_step(self) -> None: ...

    def step(
        self,
        params,
        grads,
        backend=None,
        free_state=None,
        iterations: int = 0,
        free_iterations: int | None = None,
    ) -> None:
        """Apply ``grads`` (batch-mean dLoss/dtheta) to ``params``."""

    def end_epoch(self) -> None: ...

    def epoch_metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class IdealUpdater:
    """The optimizer writes the weights: ``theta <- optimizer(theta, g)``."""

    ideal = True

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def begin_step(self) -> None:
        pass

    def step(
        self,
        params,
        grads,
        backend=None,
        free_state=None,
        iterations: int = 0,
        free_iterations: int | None = None,
    ) -> None:
        self.optimizer.step(params, grads)

    def end_epoch(self) -> None:
        pass

    def epoch_metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"arrays": {}, "scalars": {}, "rng": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CrossbarUpdater:
    """Weights on crossbars of the devices of the profile compiled into ``backend``'s plan;
    updates as pulses (module docstring). Installs read noise on ``backend`` (the plan
    already carries the profile's converters)."""

    ideal = False

    def __init__(self, backend, optimizer, seed: int):
        profile: HardwareProfile | None = backend.plan.profile
        if profile is None:
            raise ValueError("CrossbarUpdater needs a backend whose plan has a hardware profile")
        self.profile, self.b, self.optimizer = profile, backend, optimizer
        dev_seed = profile.get("rng", "device_seed")
        dev_seed = seed if dev_seed is None else dev_seed
        self.xbar = Crossbars(
            profile, backend.get_parameters(), derive_rng(dev_seed, "hardware/devices")
        )
        self.rng_update = derive_rng(seed, "hardware/update")
        self.rng_read = derive_rng(seed, "hardware/read")
        self.rng_convert = derive_rng(seed, "hardware/convert")  # converter noise, rounding
        backend.set_converter_rng(self.rng_convert)
        out = backend.plan.couplings[-1].name
        g_unit = self.xbar.g_unit if self.xbar.differential else None
        if g_unit:  # the profile refuses SI-unit limits on other mappings
            backend.set_nudge_current(nudge_current(profile, g_unit[out]))
        backend.set_tile_reads(tile_reads(profile, backend.plan, g_unit))
        backend.set_node_clamps(node_clamps(profile, backend.plan, g_unit))
        self.plain = profile.get("update", "rule") == "plain"
        self.resample = profile.get("read", "resample")
        self.t_read = profile.get("energy", "t_read_sec")
        self._load_weights()
        self.pulses, self.update_energy_J, self.relax_energy_J = 0, 0.0, 0.0
        self.convert_energy_J = 0.0
        self.updates, self.examples, self.inference_J_sum = 0, 0, 0.0
        g, shapes = profile.get, backend.plan.layer_shapes  # converter energy per example:
        adc = g("energy", "e_adc_J") if g("adc", "bits") else 0.0
        dac = g("energy", "e_dac_J") if g("dac", "bits") else 0.0
        n_adc, n_dac = conversions_per_example(profile, backend.plan)
        self._adc_J_per_iteration = adc * n_adc + dac * n_dac
        self._dac_J = dac * math.prod(shapes[0])

    def _load_weights(self) -> None:
        """Read the crossbars' effective weights into the backend (new read-noise std)."""
        self.b.set_parameters(self.xbar.weights())
        std = self.xbar.read_noise_std()
        keep = self.b.read_noise_draw()
        self.b.set_read_noise(None if std is None else ReadNoise(std, self.resample), self.rng_read)
        if self.resample == "per_update":
            self.b.set_read_noise_draw(keep)  # the update's draw stays until the next step

    # ------------------------------------------------------------------ a training step
    def begin_step(self) -> None:
        """Start an update: a fresh read-noise draw shared by its phases (``per_update``)."""
        if self.resample == "per_update" and self.b.read_noise is not None:
            self.b.redraw_read_noise()

    def _observe(self, free_state, iterations: int, free_iterations: int | None = None) -> None:
        """Account the energy of a step's relaxations: crossbar read power at the free
        equilibrium times ``iterations * t_read_sec`` (dense and conv crossbars), and the
        converters: per iteration the ADC reads every non-input node (untiled) or every
        tile output, and with tiles the DAC writes every node back
        (:func:`analogebl.hardware.tiles.conversions_per_example`); every input node is
        converted by the DAC once per example (it holds the input through the step's
        phases): ``E = N (iterations (n_adc e_adc + n_dac e_dac) + n_0 e_dac)``.

        The energy of one *inference* (the free phase of one example, ``free_iterations``
        reads at the free equilibrium's power, its conversions and the input's DAC) is
        summed into ``inference_J_sum``, its mean reported as ``inference_energy_J``."""
        n = free_state[0].shape[0]
        self.convert_energy_J += n * (iterations * self._adc_J_per_iteration + self._dac_J)
        k = iterations if free_iterations is None else free_iterations
        self.examples += n
        self.inference_J_sum += n * (k * self._adc_J_per_iteration + self._dac_J)
        if not self.t_read or not self.xbar.differential:
            return
        b = self.b
        p = 0.0
        for c in b.plan.couplings:
            p += self.xbar.crossbar_power_W(
                c.name, b.to_numpy(free_state[c.pre]), b.to_numpy(free_state[c.post]), c
            )
        self.relax_energy_J += p * iterations * self.t_read * n
        self.inference_J_sum += p * k * self.t_read * n

    def step(
        self,
        params,
        grads,
        backend=None,
        free_state=None,
        iterations: int = 0,
        free_iterations: int | None = None,
    ) -> None:
        """Turn the estimate into pulses and read the new weights back. ``iterations``:
        the step's relaxation iterations (free + nudged phases), ``free_iterations`` those
        of its free phase (one inference)."""
        b = self.b
        self.updates += 1
        if free_state is not None:
            self._observe(free_state, iterations, free_iterations)
        old = {k: b.to_numpy(v).astype(np.float64) for k, v in b.params.items()}
        if self.plain:
            delta = {
                k: -self.optimizer.lr(k) * b.to_numpy(g).astype(np.float64)
                for k, g in grads.items()
            }
        else:
            self.optimizer.step(b.params, grads)
            delta = {k: b.to_numpy(b.params[k]).astype(np.float64) - old[k] for k in old}
        stats = self.xbar.apply(delta, self.rng_update)
        self.pulses += stats.pulses
        self.update_energy_J += stats.energy_J
        if free_state is not None and self.t_read:
            # the step's relaxations take iterations * t_read per example (examples relax
            # one after another on one circuit): the retention leak over that time
            self.xbar.leak(iterations * self.t_read * free_state[0].shape[0])
        self._load_weights()

    def end_epoch(self) -> None:
        """Time passes between epochs (``retention.epoch_interval_sec``): leak and drift."""
        dt = self.profile.get("retention", "epoch_interval_sec")
        if dt > 0:
            self.xbar.advance(dt)
            self._load_weights()

    def epoch_metrics(self) -> dict[str, float]:
        """Cumulative pulses, updates and energies (J) of the run so far, and the mean
        energy of one inference (J per example, free phase)."""
        return {
            "pulses": self.pulses,
            "update_energy_J": self.update_energy_J,
            "relax_energy_J": self.relax_energy_J,
            "convert_energy_J": self.convert_energy_J,
            "energy_J": self.update_energy_J + self.relax_energy_J + self.convert_energy_J,
            "updates": self.updates,
            "inference_energy_J": self.inference_J_sum / max(self.examples, 1),
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        arrays = {"hw": dict(self.xbar.state_dict())}
        draw = self.b.read_noise_draw()
        if draw is not None:
            arrays["hwnoise"] = {k: self.b.to_numpy(v) for k, v in draw.items()}
        rng = {
            "hardware/update": self.rng_update.bit_generator.state,
            "hardware/read": self.rng_read.bit_generator.state,
            "hardware/convert": self.rng_convert.bit_generator.state,
        }
        scalars = {
            "hw_pulses": self.pulses,
            "hw_update_J": self.update_energy_J,
            "hw_relax_J": self.relax_energy_J,
            "hw_convert_J": self.convert_energy_J,
            "hw_updates": self.updates,
            "hw_examples": self.examples,
            "hw_infer_J": self.inference_J_sum,
        }
        return {"arrays": arrays, "scalars": scalars, "rng": json.loads(json.dumps(rng))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        arrays, rng, scalars = state["arrays"], state["rng"], state["scalars"]
        self.xbar.load_state_dict(arrays.get("hw", {}))
        self.rng_update.bit_generator.state = rng["hardware/update"]
        self.rng_read.bit_generator.state = rng["hardware/read"]
        if "hardware/convert" in rng:  # absent from checkpoints before converter noise
            self.rng_convert.bit_generator.state = rng["hardware/convert"]
        self.pulses = int(scalars.get("hw_pulses", 0))
        self.update_energy_J = float(scalars.get("hw_update_J", 0.0))
        self.relax_energy_J = float(scalars.get("hw_relax_J", 0.0))
        self.convert_energy_J = float(scalars.get("hw_convert_J", 0.0))
        self.updates = int(scalars.get("hw_updates", 0))
        self.examples = int(scalars.get("hw_examples", 0))
        self.inference_J_sum = float(scalars.get("hw_infer_J", 0.0))
        self._load_weights()
        noise = {k: self.b.asarray(v) for k, v in arrays.get("hwnoise", {}).items()}
        self.b.set_read_noise_draw(noise or None)
