"""⑦ A training run on hardware: the backend's parameters live on :class:`Crossbars`.

Per training step (:meth:`HardwareSession.step`): the optimizer turns the rule's estimate
into a desired ``dW`` (the paper's recipe: momentum, weight decay), or, with
``update.rule = "plain"``, ``dW = -lr * g`` from the contrast alone; the crossbars realise it
as pulses through the device response; the backend then reads the new effective weights.
Quantizers and read noise are installed on the backend's relaxation hooks
(:mod:`analogebl.plan.effects`). Random streams: device instances from
``(device_seed or study seed, "hardware/devices")``, pulses from ``"hardware/update"``, reads
from ``"hardware/read"``; their states go into checkpoints.
"""

from __future__ import annotations

import json

import numpy as np

from analogebl.hardware import Crossbars, HardwareProfile, state_quantizers
from analogebl.plan import derive_rng
from analogebl.plan.effects import ReadNoise

__all__ = ["HardwareSession"]


class HardwareSession:
    """Binds a profile's crossbars and converters to a backend (see module docstring)."""

    def __init__(self, profile: HardwareProfile, backend, mean, std, seed: int):
        self.profile, self.b = profile, backend
        dev_seed = profile.get("rng", "device_seed") or seed
        self.xbar = Crossbars(
            profile, backend.get_parameters(), derive_rng(dev_seed, "hardware/devices")
        )
        self.rng_update = derive_rng(seed, "hardware/update")
        self.rng_read = derive_rng(seed, "hardware/read")
        self.plain = profile.get("update", "rule") == "plain"
        self.resample = profile.get("read", "resample")
        self.t_read = profile.get("energy", "t_read_sec")
        backend.set_quantizers(state_quantizers(profile, backend.plan.num_layers, mean, std))
        self._load_weights()
        self.pulses, self.update_energy_J, self.relax_energy_J = 0, 0.0, 0.0

    def _load_weights(self) -> None:
        self.b.set_parameters(self.xbar.weights())
        std = self.xbar.read_noise_std()
        keep = self.b._noise_now
        self.b.set_read_noise(None if std is None else ReadNoise(std, self.resample), self.rng_read)
        if self.resample == "per_update":
            self.b._noise_now = keep  # the current update's draw stays until the next step

    # ------------------------------------------------------------------ training
    def begin_step(self) -> None:
        """Start an update: a fresh read-noise draw shared by its phases (``per_update``)."""
        if self.resample == "per_update" and self.b._noise is not None:
            self.b.redraw_read_noise()

    def observe(self, free_state, iterations: int) -> None:
        """Account the read energy of a step's relaxations: power at the free equilibrium
        times ``iterations * t_read_sec`` (dense crossbars)."""
        if not self.t_read or not self.xbar.differential:
            return
        b, plan = self.b, self.b.plan
        p = 0.0
        for c in plan.couplings:
            if c.kind == "dense":
                p += self.xbar.crossbar_power_W(
                    c.name, b.to_numpy(free_state[c.pre]), b.to_numpy(free_state[c.post])
                )
        self.relax_energy_J += p * iterations * self.t_read * free_state[0].shape[0]

    def step(self, optimizer, grads) -> None:
        """Turn the estimate into pulses and read the new weights back."""
        b = self.b
        old = {k: b.to_numpy(v).astype(np.float64) for k, v in b.params.items()}
        if self.plain:
            delta = {
                k: -optimizer.lr(k) * b.to_numpy(g).astype(np.float64) for k, g in grads.items()
            }
        else:
            optimizer.step(b.params, grads)
            delta = {k: b.to_numpy(b.params[k]).astype(np.float64) - old[k] for k in old}
        stats = self.xbar.apply(delta, self.rng_update)
        self.pulses += stats.pulses
        self.update_energy_J += stats.energy_J
        self._load_weights()

    def end_epoch(self) -> None:
        """Time passes between epochs (``retention.epoch_interval_sec``): drift."""
        dt = self.profile.get("retention", "epoch_interval_sec")
        if dt > 0:
            self.xbar.advance(dt)
            self._load_weights()

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict[str, np.ndarray], dict, dict]:
        arrays = {f"hw/{k}": v for k, v in self.xbar.state_dict().items()}
        if self.b._noise_now is not None:
            arrays.update(
                {f"hwnoise/{k}": self.b.to_numpy(v) for k, v in self.b._noise_now.items()}
            )
        rng = {
            "hardware/update": self.rng_update.bit_generator.state,
            "hardware/read": self.rng_read.bit_generator.state,
        }
        scalars = {
            "hw_pulses": self.pulses,
            "hw_update_J": self.update_energy_J,
            "hw_relax_J": self.relax_energy_J,
        }
        return arrays, json.loads(json.dumps(rng)), scalars

    def load_state(self, arrays: dict, rng: dict, scalars: dict) -> None:
        self.xbar.load_state_dict({k[3:]: v for k, v in arrays.items() if k.startswith("hw/")})
        self.rng_update.bit_generator.state = rng["hardware/update"]
        self.rng_read.bit_generator.state = rng["hardware/read"]
        self.pulses = int(scalars.get("hw_pulses", 0))
        self.update_energy_J = float(scalars.get("hw_update_J", 0.0))
        self.relax_energy_J = float(scalars.get("hw_relax_J", 0.0))
        self._load_weights()
        noise = {k[8:]: self.b.asarray(v) for k, v in arrays.items() if k.startswith("hwnoise/")}
        self.b._noise_now = noise or None
