"""Flax NNX models behind a functional face: `Functional(init, apply)`."""

from chaosjax.models._functional import Functional, functional
from chaosjax.models.mlp import ACTIVATIONS, MLP, ResidualMLP, mlp

__all__ = ["ACTIVATIONS", "MLP", "Functional", "ResidualMLP", "functional", "mlp"]
