"""Recurrent fixed-point models of the earlier EqProp projects (LoopedMLP, ToroidalMLP,
ModernEqProp), built correctly, and their training interface."""

from analogebl.models.network import ModelNetwork
from analogebl.models.recurrent import MODELS, ModelSpec, RecurrentModel, RelaxResult

__all__ = ["MODELS", "ModelNetwork", "ModelSpec", "RecurrentModel", "RelaxResult"]
