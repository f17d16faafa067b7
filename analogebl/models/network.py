"""``ModelNetwork``: a recurrent model (:mod:`analogebl.models.recurrent`) behind the same
training interface as :class:`analogebl.Network`, so studies, recording, resume and reports
treat both alike. NumPy crosses the API; torch tensors stay inside.

Every relaxation starts from ``h = 0`` (training and evaluation alike) and runs until every
example moved less than ``tol`` or the step budget is spent; the number of steps and the
fraction of examples that converged are reported with each training step.
"""

from __future__ import annotations

import numpy as np
import torch

from analogebl.errors import ConfigError
from analogebl.models.recurrent import ModelSpec, RecurrentModel

__all__ = ["ModelNetwork"]


class ModelNetwork:
    """A recurrent model with torch parameters.

    Parameters
    ----------
    spec : ModelSpec
    dtype : {"float32", "float64"}
    device : str, optional
    seed : int
        Seeds the initial weights and the Langevin noise of ``fn_ep`` at ``T > 0``.
    tol : float
        Relaxation tolerance (max-norm change per step) for early stopping.
    """

    def __init__(
        self,
        spec: ModelSpec,
        dtype: str = "float32",
        device: str | None = None,
        seed: int = 0,
        tol: float = 1e-4,
    ):
        from analogebl.plan import derive_rng

        self.spec = spec
        self.tol = tol
        self.model = RecurrentModel(spec, dtype, device, derive_rng(seed, "model/init"))
        self.rng = torch.Generator(device=self.model.device).manual_seed(seed)
        self.name, self.dtype, self.device = "torch", dtype, str(self.model.device)

    def __repr__(self) -> str:
        return f"ModelNetwork({self.spec.name}, dtype={self.dtype}, device={self.device})"

    # ------------------------------------------------------------------ the Network protocol
    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "dtype": self.dtype, "device": self.device}

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.params.items()}

    def load_parameters(self, params: dict[str, np.ndarray]) -> None:
        for k, v in params.items():
            if k not in self.model.params or tuple(v.shape) != tuple(self.model.params[k].shape):
                raise ConfigError(f"parameter {k} does not fit the model", key=k)
            self.model.params[k] = self.to_backend(v)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The live parameter dict (optimizers update it in place)."""
        return self.model.params

    def to_backend(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.model.dtype, device=self.model.device)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def description_toml(self) -> str:
        return self.spec.to_toml()

    def coupling_roles(self) -> tuple[set[str], set[str]]:
        """(hidden couplings, dense couplings) for the optimizers: the recurrent ones are
        hidden; every 2-D weight is dense."""
        return set(self.model.recurrent_couplings()), set(self.model.couplings())

    def warm_arrays(self) -> dict[str, np.ndarray]:
        return {}  # every relaxation starts from zero

    def load_warm_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def extra_state(self) -> dict[str, np.ndarray]:
        """Spectral-norm power-iteration vectors (checkpointed for bit-exact resume)."""
        return {f"sn/{k}": self.to_numpy(v) for k, v in self.model.sn_vectors.items()}

    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        for k, v in arrays.items():
            if k.startswith("sn/"):
                self.model.sn_vectors[k[3:]] = self.to_backend(v)

    def check_finite(self) -> str | None:
        for k, v in self.model.params.items():
            if not bool(torch.isfinite(v).all()):
                return f"parameter {k}"
        return None

    def _x(self, x: np.ndarray) -> torch.Tensor:
        return self.to_backend(np.asarray(x).reshape(len(x), -1))

    def _y1h(self, y: np.ndarray) -> torch.Tensor:
        return self.to_backend(np.eye(self.spec.n_out)[np.asarray(y)])

    def predict(self, x: np.ndarray, iterations: int = 25) -> np.ndarray:
        m = self.model
        eff = m.effective()
        h = m.relax(self._x(x), iterations, self.tol, eff=eff).h
        return self.to_numpy(m.readout(h, eff)).argmax(axis=1)

    def train_step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rule,
        updater,
        free_iterations: int = 25,
        schedule: str = "async",
    ) -> dict[str, float]:
        """Free relaxation from zero, the rule's estimate, one optimizer step.

        Returns the batch's free-phase cost, error, mean energy (NaN without an energy),
        final step change (``residual``), iterations run (``relax_steps``) and the fraction
        of examples that met the tolerance (``converged``).
        """
        from analogebl.models.rules import check_rule_applies, model_estimate

        if not updater.ideal:
            raise ConfigError(
                f"hardware profiles apply to crossbar circuits, not to {self.spec.name}",
                key="profile",
            )
        check_rule_applies(rule, self.model)
        m = self.model
        m.power_iteration()
        xt, y1h = self._x(x), self._y1h(y)
        with torch.no_grad():
            eff = m.effective()
        free = m.relax(xt, free_iterations, self.tol, eff=eff)
        with torch.no_grad():
            cost = float(m.cost(free.h, y1h, eff).mean())
            pred = m.readout(free.h, eff).argmax(1).cpu().numpy()
            energy = (
                float(m.energy(free.h, xt, eff).mean()) if self.spec.has_energy else float("nan")
            )
        grads, _ = model_estimate(m, rule, xt, y1h, free.h, free_iterations, self.tol, self.rng)
        updater.step(m.params, {k: g.detach() for k, g in grads.items()})
        return {
            "cost": cost,
            "error": float(np.mean(pred != np.asarray(y))),
            "energy": energy,
            "residual": free.residual,
            "relax_steps": float(free.steps),
            "converged": free.converged,
        }

    def epoch_diagnostics(self, x: np.ndarray, iterations: int) -> dict[str, float]:
        """``sigma_max`` of every coupling (as the dynamics use it) and the fixed-point map's
        Lipschitz constant ``||dPhi/dh||_2`` at the free equilibria of ``x`` (mean, max)."""
        m = self.model
        out = {}
        with torch.no_grad():
            eff = m.effective()
            for k in m.couplings():
                out[f"sigma_{k}"] = float(torch.linalg.matrix_norm(eff[k], ord=2))
        xt = self._x(x)
        h = m.relax(xt, iterations, self.tol, eff=eff).h
        lip = m.jacobian_norm(h, xt)
        out["lipschitz_mean"] = float(lip.mean())
        out["lipschitz_max"] = float(lip.max())
        return out
