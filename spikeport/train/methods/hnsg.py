"""``hnsg`` (Wu, Fang & Kang, AICAS 2023: hidden-network search in a randomly weighted SNN with
surrogate gradients): the weights never change; training learns which synapses exist.

Per layer with fan-in n and ``keep_fraction`` p (the fraction of the layer's out*in synapses that
are kept; p = 0.5 keeps half)::

    W  = sigma * sign(U),  U ~ uniform(-1, 1),  sigma = GAIN / sqrt(p n)     frozen ("signed constant")
    S  ~ uniform(-1/sqrt(n), 1/sqrt(n))                                      learned score per synapse
    M  = top-k(|S|),  k = max(1, round(p * out * in))                        bool [out, in], per layer
    u[t] = beta_syn u[t-1] + (W * M) x[t];  v, s: CUBA-LIF as in ``lif`` (fast-sigmoid surrogate)

Backward (edge-popup, straight through the top-k): dL/dS = dL/d(W*M) * W * sign(S). GAIN = 0.4 is
measured, not derived: with the dense baseline's input power (GAIN = 2/sqrt(3), the rms of
``lif``'s uniform(-2/sqrt(n), 2/sqrt(n)) init) a random half of the synapses leaves the output
layer silent or saturated and the scores barely move (Fashion-MNIST, 4000 samples, 3 epochs:
10% at GAIN 1.15, 19% at 0.8, 50% at 0.58, 72-73% at 0.29-0.40).

Deployment: every weight is +-sigma, so int8 quantization is exact (q = +-127, scale sigma / 127).
The NIR Affine node carries the frozen int8 weights in ``loihi.weight`` and the mask in
``loihi.mask`` (bool [out, in]); the float weight is (W * M) dequantized. The loader zeroes weights
outside the mask and deploys the layer as Lava ``Sparse``. Reported: the average fire intensity
(spikes per neuron per step over all layers; the paper's 2-layer MNIST FC reaches 93.73% at 0.138).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from spikeport.core import quant
from spikeport.train.methods.base import Method
from spikeport.train.model import LayerSpec, LIFDense

GAIN = 0.4  # sigma = GAIN / sqrt(keep_fraction * fan_in); the default of the ``hnsg_gain`` setting


def kept_count(keep_fraction: float, n_synapses: int) -> int:
    """Synapses kept in a layer: max(1, round(keep_fraction * n_synapses))."""
    return max(1, int(round(float(keep_fraction) * n_synapses)))


class TopK(torch.autograd.Function):
    """Forward: 1 on the k largest entries of a score matrix, 0 elsewhere. Backward: identity."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int) -> torch.Tensor:
        mask = torch.zeros_like(scores).flatten()
        mask[torch.topk(scores.flatten(), k, sorted=False).indices] = 1.0
        return mask.reshape(scores.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class HNSGDense(LIFDense):
    """Frozen signed-constant weights, learned scores, top-k mask (``keep_fraction`` of synapses)."""

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0,
                 keep_fraction: float = 0.5, gain: float = GAIN):
        super().__init__(spec, input_unit, surrogate_slope)
        self.k = kept_count(keep_fraction, spec.n_out * spec.n_in)
        sigma = gain / np.sqrt(keep_fraction * spec.n_in)
        with torch.no_grad():
            self.weight.copy_(sigma * torch.sign(torch.empty_like(self.weight).uniform_(-1.0, 1.0)))
        self.weight.requires_grad_(False)
        bound = 1.0 / np.sqrt(spec.n_in)
        self.scores = torch.nn.Parameter(torch.empty(spec.n_out, spec.n_in).uniform_(-bound, bound))

    def mask(self) -> torch.Tensor:
        """bool [out, in]: the synapses this layer keeps now."""
        return TopK.apply(self.scores.detach().abs(), self.k) > 0

    def float_params(self, x: torch.Tensor | None = None):
        return self.weight * TopK.apply(self.scores.abs(), self.k), self.bias

    def quantize(self, w: torch.Tensor, bias: torch.Tensor | None) -> quant.LayerQuant:
        """The frozen weights quantized (scale from all of them) plus the current mask."""
        lq = super().quantize(self.weight, bias)
        return dataclasses.replace(lq, mask=self.mask().cpu().numpy())


class Hnsg(Method):
    name = "hnsg"
    layer_cls = HNSGDense

    def layer_kwargs(self, cfg) -> dict:
        return {"keep_fraction": float(cfg.keep_fraction), "gain": float(cfg.hnsg_gain)}

    def metrics(self, model) -> dict:
        kept = [int(layer.mask().sum()) for layer in model.layers]
        total = [int(layer.weight.numel()) for layer in model.layers]
        return {"keep_fraction": [round(k / t, 6) for k, t in zip(kept, total)], "kept_synapses": kept}
