"""ScalarMix: ELMo's learned, task-specific weighting of the biLM's layers (Peters et al., 2018, eq. 1).

    mix = gamma * sum_k softmax(w)_k * h_k

With layer_norm=True each layer is first normalised over its (masked) elements, as AllenNLP's
ScalarMix does. The weights start equal (w = 0) and gamma at 1, so an untrained mix is the layer average.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .errors import ConfigError


class ScalarMix(nn.Module):
    def __init__(self, num_layers: int, layer_norm: bool = False, initial_weights: Optional[Sequence[float]] = None,
                 trainable: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        initial = [0.0] * num_layers if initial_weights is None else list(initial_weights)
        if len(initial) != num_layers:
            raise ConfigError(f"{len(initial)} initial weights for {num_layers} layers")
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.scalar_parameters = nn.Parameter(torch.tensor(initial, dtype=torch.float32), requires_grad=trainable)
        self.gamma = nn.Parameter(torch.tensor(1.0), requires_grad=trainable)

    @property
    def weights(self) -> Tensor:
        """(layers,) the softmax-normalised layer weights (they sum to one)."""
        return torch.softmax(self.scalar_parameters, dim=0)

    def forward(self, layers: Sequence[Tensor] | Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """layers: num_layers tensors (batch, seq, dim), or one (layers, batch, seq, dim) tensor.
        mask: (batch, seq) bool, True on real positions; needed for layer_norm. Returns (batch, seq, dim)."""
        if isinstance(layers, Tensor):
            layers = list(layers.unbind(0))
        if len(layers) != self.num_layers:
            raise ConfigError(f"{len(layers)} layers given to a ScalarMix of {self.num_layers}")
        weights = self.weights
        if self.layer_norm:
            if mask is None:
                mask = torch.ones(layers[0].shape[:-1], dtype=torch.bool, device=layers[0].device)
            layers = [_masked_layer_norm(layer, mask) for layer in layers]
        mixed = sum(weight * layer for weight, layer in zip(weights, layers))
        return self.gamma * mixed


def _masked_layer_norm(layer: Tensor, mask: Tensor, eps: float = 1e-12) -> Tensor:
    """Normalise `layer` (batch, seq, dim) by the mean and std of its real elements (mask (batch, seq))."""
    weights = mask.unsqueeze(-1).to(layer.dtype)  # (batch, seq, 1)
    count = weights.sum() * layer.shape[-1]
    mean = (layer * weights).sum() / count.clamp(min=1)
    variance = (((layer - mean) * weights) ** 2).sum() / count.clamp(min=1)
    return (layer - mean) / torch.sqrt(variance + eps)
