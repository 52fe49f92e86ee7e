"""Surrogate-gradient spike functions: Heaviside forward (strict ``z > 0``, as Loihi), smooth backward.

``z`` is the distance to threshold in units of the threshold, ``(v - theta) / theta``.
"""
from __future__ import annotations

import torch


class FastSigmoidSpike(torch.autograd.Function):
    """Forward H(z); backward d/dz = 1 / (1 + slope*|z|)**2 (SuperSpike, Zenke & Ganguli 2018)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, slope)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, slope = ctx.saved_tensors
        dz = grad / (1.0 + slope * z.abs()) ** 2
        return dz, None


def fast_sigmoid(slope: float = 10.0):
    """A spike function with a fixed surrogate slope."""
    s = torch.tensor(float(slope))
    return lambda z: FastSigmoidSpike.apply(z, s)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()
