"""The user-facing :class:`Network`: a circuit simulated on a backend.

Everything crossing this API is NumPy; backend arrays (torch tensors) stay inside.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogebl.backends import make_backend
from analogebl.circuit import Circuit, load_circuit
from analogebl.errors import ConfigError
from analogebl.learning.estimators import estimate
from analogebl.learning.rules import (
    ContrastiveLearning,
    EquilibriumPropagation,
    Rule,
    make_rule,
)
from analogebl.plan import build_plan, derive_rng

__all__ = ["Network"]


class Network:
    """A Hopfield crossbar circuit with its parameters on a backend.

    Parameters
    ----------
    circuit : Circuit
    backend : {"auto", "reference", "numba", "torch"}
    dtype : {"float32", "float64", "float16", "bfloat16"}
        The relaxation's format. float16 and bfloat16 run on the torch backend only (name
        it: ``"auto"`` may pick numba, which refuses them): states and coupling products in
        16 bit, correlations (so every gradient estimate), energies and the parameters in
        float32; :meth:`parameters` and every array returned are float32
        (:mod:`analogebl.backends.torch`).
    device : str, optional
        torch device (``"cpu"``, ``"cuda"``).
    seed : int
        Seeds the parameter initialisation (through the plan).
    profile : HardwareProfile, optional
        Compiled into the plan (its converters quantize the relaxation); the training run's
        :class:`~analogebl.training.CrossbarUpdater` puts the parameters on its devices.
    data_stats : (mean, std), optional
        The data's normalisation: the input DAC spans the pixel range it maps to.

    Examples
    --------
    >>> import analogebl as ae
    >>> net = ae.Network.from_catalog("tiny_conv", backend="reference", dtype="float64")
    >>> sorted(net.parameters())[:2]
    ['W1', 'W2']
    """

    def __init__(
        self,
        circuit: Circuit,
        backend: str = "auto",
        dtype: str = "float32",
        device: str | None = None,
        seed: int = 0,
        profile=None,
        data_stats=None,
    ):
        self.circuit = circuit
        self.plan = build_plan(circuit, seed, profile, data_stats)
        self.backend = make_backend(backend, self.plan, dtype, device)
        if self.plan.profile is not None:
            # noisy converters draw from this until a CrossbarUpdater installs its own (the
            # same stream): relax and evaluate work on a network built with any profile
            self.backend.set_converter_rng(derive_rng(seed, "hardware/convert"))
        self._warm: list[Any] | None = None

    @classmethod
    def from_catalog(
        cls,
        name: str,
        in_channels: int | None = None,
        num_classes: int | None = None,
        width: float | None = None,
        gains: list[float] | None = None,
        pool: str | None = None,
        backend: str = "auto",
        dtype: str = "float32",
        device: str | None = None,
        seed: int = 0,
        depth: int | None = None,
        profile=None,
        data_stats=None,
    ) -> Network:
        """Build a catalog circuit (``circuits/NAME.toml``) with optional overrides, on the
        hardware ``profile`` (``data_stats``: the data's normalisation ``(mean, std)``, which
        the input DAC's range follows)."""
        circuit = load_circuit(
            name,
            in_channels=in_channels,
            num_classes=num_classes,
            width=width,
            gains=gains,
            pool=pool,
            depth=depth,
        )
        return cls(circuit, backend, dtype, device, seed, profile, data_stats)

    def __repr__(self) -> str:
        b = self.backend
        return f"Network({self.circuit!r}, backend={b.name}, dtype={b.dtype}, device={b.device})"

    # ------------------------------------------------------------------ parameters
    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, name -> array in circuit order (``W1, b1, W2, ...``).

        Conv weights ``(out, in, kh, kw)``; dense ``(in, out)`` with ``in`` the pre layer's
        ``(C, H, W)`` flattened in C order; biases ``(channels,)``.
        """
        return self.backend.get_parameters()

    def load_parameters(self, params: dict[str, np.ndarray]) -> None:
        """Replace (some of) the parameters; shapes must match."""
        self.backend.set_parameters(params)
        self._warm = None

    # ------------------------------------------------------------------ the training protocol
    # (what analogebl.pipeline needs from a trainable thing; ModelNetwork has the same)
    def describe(self) -> dict[str, str]:
        """Backend name, dtype and device (recorded with results)."""
        b = self.backend
        return {"backend": b.name, "dtype": b.dtype, "device": str(b.device)}

    def description_toml(self) -> str:
        """The resolved circuit as TOML."""
        return self.circuit.to_toml()

    def to_backend(self, a: np.ndarray):
        return self.backend.asarray(a)

    def to_numpy(self, a) -> np.ndarray:
        return self.backend.to_numpy(a)

    def coupling_roles(self) -> tuple[set[str], set[str]]:
        """(hidden couplings: between two hidden layers, dense couplings)."""
        plan = self.plan
        last = plan.num_layers - 1
        return (
            {c.name for c in plan.couplings if c.pre != 0 and c.post != last},
            {c.name for c in plan.couplings if c.kind == "dense"},
        )

    def warm_arrays(self) -> dict[str, np.ndarray]:
        """The warm-start state (the next free phase starts there), for checkpoints."""
        if self._warm is None:
            return {}
        return {str(k): self.backend.to_numpy(v) for k, v in enumerate(self._warm)}

    def load_warm_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if arrays:
            self._warm = [self.backend.asarray(arrays[str(k)]) for k in range(self.plan.num_layers)]

    def extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def check_finite(self) -> str | None:
        """The first layer (of the warm state) or parameter holding NaN/Inf, else None."""
        if self._warm is None:
            return None
        return self.backend.check_finite(self._warm)

    def epoch_diagnostics(self, x: np.ndarray, iterations: int) -> dict[str, float]:
        """``sigma_max`` of every coupling's matrix view (dense ``W^T``, conv
        ``(O, I*kh*kw)``): the quantity a spectral cap bounds."""
        out = {}
        for k, w in self.parameters().items():
            if w.ndim in (2, 4):
                m = w.T if w.ndim == 2 else w.reshape(w.shape[0], -1)
                out[f"sigma_{k}"] = float(np.linalg.norm(m.astype(np.float64), 2))
        return out

    @property
    def layer_names(self) -> tuple[str, ...]:
        return self.plan.layer_names

    # ------------------------------------------------------------------ relaxation
    def _states_dict(self, state) -> dict[str, np.ndarray]:
        return {n: self.backend.to_numpy(s) for n, s in zip(self.layer_names, state, strict=True)}

    def _state_list(self, states: dict[str, np.ndarray]):
        return [self.backend.asarray(states[n]) for n in self.layer_names]

    def relax(
        self,
        x: np.ndarray,
        iterations: int = 60,
        schedule: str = "async",
        beta: float = 0.0,
        y: np.ndarray | None = None,
        states: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Relax to (near) equilibrium from the zero state (or ``states``).

        With ``beta != 0`` and labels ``y`` the output is nudged (``F = E + beta C``).
        Returns layer name -> array, the input included.
        """
        b = self.backend
        start = b.zero_state(x) if states is None else self._state_list(states)
        target = None if y is None else b.one_hot(y)
        return self._states_dict(b.relax(start, iterations, schedule, beta, target))

    def energy(
        self, states: dict[str, np.ndarray], beta: float = 0.0, y: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-example energy ``E(s)`` (plus ``beta/2 ||o - y||^2``)."""
        b = self.backend
        target = None if y is None else b.one_hot(y)
        return b.to_numpy(b.energy(self._state_list(states), beta, target))

    def predict(self, x: np.ndarray, iterations: int = 60) -> np.ndarray:
        """Class predictions (argmax of the output) after relaxing from zero."""
        b = self.backend
        s = b.relax(b.zero_state(x), iterations)
        return b.to_numpy(s[-1]).argmax(axis=1)

    # ------------------------------------------------------------------ gradients
    def _rule(self, rule: str | Rule, beta: float | None, iterations: int) -> Rule:
        return make_rule(rule, beta, iterations) if isinstance(rule, str) else rule

    def estimate_gradient(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rule: str | Rule = "c_ep",
        beta: float | None = None,
        iterations: int = 15,
        free_iterations: int = 60,
        schedule: str = "async",
    ) -> dict[str, np.ndarray]:
        """A rule's batch-mean estimate of ``dLoss/dtheta`` (same sign as the gradient).

        Free phase from the zero state (``free_iterations``), then the rule's two phases
        (``iterations`` each) from the free state. ``Loss = mean_n 1/2 ||o - y||^2``.
        """
        b = self.backend
        r = self._rule(rule, beta, iterations)
        free = b.relax(b.zero_state(x), free_iterations, schedule)
        grads, _ = estimate(b, r, free, b.one_hot(y), schedule)
        return {k: b.to_numpy(v) for k, v in grads.items()}

    def implicit_gradient(
        self, x: np.ndarray, y: np.ndarray, free_iterations: int = 1000, tol: float = 1e-12
    ) -> dict[str, np.ndarray]:
        """Exact ``dLoss/dtheta`` at the free equilibrium by implicit differentiation."""
        b = self.backend
        free = b.relax(b.zero_state(x), free_iterations)
        grads, _ = b.implicit_gradient(free, b.one_hot(y), tol)
        return {k: b.to_numpy(v) for k, v in grads.items()}

    # ------------------------------------------------------------------ training
    def train_step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rule: Rule,
        updater,
        free_iterations: int = 60,
        schedule: str = "async",
    ) -> dict[str, float]:
        """One training step: warm-started free phase, the rule's estimate, the update.

        The free phase starts from the state the previous step ended in (the reference's
        warm start) when the batch size is unchanged, else from zero. Returns the batch's
        free-phase cost, error, mean energy and relaxation residual
        ``max |s - act(h)|`` (before the update). ``updater``: an
        :class:`~analogebl.training.IdealUpdater` (the optimizer writes the weights) or a
        :class:`~analogebl.training.CrossbarUpdater` (the update becomes pulses).
        """
        b = self.backend
        optimizer = updater.optimizer
        updater.begin_step()
        start = b.zero_state(x)
        if self._warm is not None and self._warm[0].shape[0] == start[0].shape[0]:
            start = [start[0], *self._warm[1:]]
        free = b.relax(start, free_iterations, schedule)
        target = b.one_hot(y)
        out = b.to_numpy(free[-1])
        cost = 0.5 * float(np.mean(np.sum((out - np.eye(out.shape[1])[y]) ** 2, axis=1)))
        error = float(np.mean(out.argmax(axis=1) != y))
        energy = float(np.mean(b.to_numpy(b.energy(free))))
        residual = b.residual(free)
        observer = None
        if getattr(optimizer, "kfac", None):  # K-FAC statistics from the two equilibria
            if not isinstance(rule, EquilibriumPropagation | ContrastiveLearning):
                raise ConfigError(
                    f"optimizer {optimizer.name} needs a contrastive rule's two "
                    f"equilibria; rule {rule.name} has none",
                    key="rule.name",
                )

            def observer(f, s1, s2, b1, b2):
                optimizer.observe(b, f, s1, s2, b1, b2)

        grads, last = estimate(b, rule, free, target, schedule, observer)
        metrics = {"cost": cost, "error": error, "energy": energy, "residual": residual}
        metrics.update(self._convergence(free, last, rule, target))
        iterations = free_iterations + 2 * getattr(rule, "iterations", 0)  # read energy
        updater.step(b.params, grads, b, free, iterations, free_iterations=free_iterations)
        self._warm = last
        return metrics

    def _convergence(self, free, last, rule: Rule, target) -> dict[str, float]:
        """Is the step's physics where the rule's theory needs it? (cheap: one field per
        layer)

        ``residual_nudged``: ``max |s - act(h)|`` of the rule's second state under its own
        phase (``F = E + beta2 C`` for EP, the output clamped for CpL/CL) after
        ``rule.iterations``; EP/CpL estimates assume both states are equilibria, and a
        residual comparable to the contrast ``s2 - s1`` makes the estimate noise.
        ``pinned_<layer>``: the fraction of a hidden layer's units at a diode clamp (0 or 1)
        in the free state; a layer whose units are all pinned passes no contrast, so every
        coupling below it stops learning.
        """
        b = self.backend
        out: dict[str, float] = {}
        if isinstance(rule, EquilibriumPropagation):
            out["residual_nudged"] = b.residual(last, beta=rule.betas[1], target=target)
        elif isinstance(rule, ContrastiveLearning):
            out["residual_nudged"] = b.residual(last, clamp_output=True)
        for name, s in zip(self.layer_names[1:-1], free[1:-1], strict=True):
            a = b.to_numpy(s)
            out[f"pinned_{name}"] = float(np.mean((a <= 0.0) | (a >= 1.0)))
        return out
