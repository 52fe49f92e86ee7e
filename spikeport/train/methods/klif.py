"""``klif`` (Jiang & Zhang 2023, "KLIF: an optimized spiking neuron unit for tuning surrogate gradient
slope and membrane potential"): a learnable scale k that sets the surrogate's slope and width, and
a ReLU on the membrane potential before firing and reset.

KLIF (paper, per step)::

    H[t] = LIF charge of V[t-1] and input X[t]
    F[t] = ReLU(k H[t]);  S[t] = Theta(F[t] - V_th);  V[t] = F[t] (1 - S[t])

spikeport's deployable form, per layer (float units, shapes [B, N])::

    u[t] = beta_syn u[t-1] + W x[t]
    v[t] = max(beta_mem v[t-1] + u[t] + b, 0)          ReLU before threshold and reset
    s[t] = H(k (v[t] - theta) / theta)                 = H(v[t] - theta) for every k > 0
    v[t] <- v[t] (1 - s[t])

Backward, with the fast sigmoid sigma'(x) = 1 / (1 + a |x|)^2 and z = (v - theta) / theta::

    ds/dz = k sigma'(k z)        (k is the peak height; the width is 1 / (a k))
    ds/dk = z sigma'(k z)        (k is learned, one scalar per layer, kept >= K_MIN)
    d max(v, 0) / dv := 1        (straight through)

The ReLU's backward is straight through, a surrogate for its derivative just as the fast sigmoid
is for H's: with the exact derivative 1[v > 0], a neuron whose voltage sits below zero gets no
gradient at all and stays silent (digits, 5 epochs: 73% with the exact derivative, 92% straight
through; ``lif`` 91%).

Which layers. ``klif_floor = "all"`` (default) floors every layer, the output layer too;
``"hidden"`` floors the hidden layers only and reads out through a plain LIF output layer (k is
still learned there). On Fashion-MNIST (docs/results.md) the floored output layer saturates: two
output neurons fire on all 8 steps for 11 % of test images, and the count readout cannot tell them
apart (84.17%); with the floor on the hidden layer only, 89.26% (lif: 88.85%).

Deployment. k multiplies the distance to threshold inside a Heaviside, so it only changes the
backward pass: the deployed forward does not depend on k at all, and Loihi runs the layer with its
plain du, dv, vth. (The paper also scales the stored state by k. Measured in units of 1/k that is a
membrane decay beta_mem * k and a threshold theta / k, which Loihi could run only while
beta_mem * k <= 1 - the learned k reached 2.6 - and it would make k a forward parameter; spikeport
keeps k in the surrogate, where the paper's motivation - a learned slope and width - lives.)
The ReLU is exact on Loihi as ``LIFParams(floor_v=True)`` (v = max(v, 0) after integration, before the threshold), exported as the CubaLIF node's metadata
``loihi.floor_v = true`` and run by the deploy side's custom Lava LIF model.
"""
from __future__ import annotations

import torch

from spikeport.train.methods.base import Method
from spikeport.train.model import LayerSpec, LIFDense

K_MIN = 1e-2  # k is clamped here in the backward pass so the surrogate keeps its sign


class KSpike(torch.autograd.Function):
    """Forward H(z) (strict z > 0); backward ds/dz = k sigma'(k z), ds/dk = sum z sigma'(k z)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, k: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(z, k)
        ctx.slope = slope
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, k = ctx.saved_tensors
        kc = k.clamp(min=K_MIN)
        g = 1.0 / (1.0 + ctx.slope * (kc * z).abs()) ** 2
        grad_k = (grad * z * g).sum().reshape(k.shape) if k.requires_grad else None
        return grad * kc * g, grad_k, None


def relu_straight_through(v: torch.Tensor) -> torch.Tensor:
    """max(v, 0) forward (exactly), identity backward."""
    return v + (v.clamp(min=0.0) - v).detach()


class KLIFDense(LIFDense):
    """CUBA-LIF layer with KLIF's ReLU on v and a learnable surrogate scale ``k`` (scalar)."""

    v_floor = staticmethod(relu_straight_through)  # truthy: exported and deployed as LIFParams.floor_v

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0, k_init: float = 1.0):
        super().__init__(spec, input_unit, surrogate_slope)
        self.k = torch.nn.Parameter(torch.tensor(float(k_init)))
        self.slope = float(surrogate_slope)

    def spike_function(self, theta: float, beta_syn: float, beta_mem: float):
        return lambda z, cur_t, u_prev: KSpike.apply(z / theta, self.k, self.slope)

    def fused_neuron(self) -> dict:
        """KSpike and the straight-through ReLU as the fused op's parameters: scale k (its value clamped at
        K_MIN as KSpike's backward does, its gradient passed straight to k), slope a."""
        k = self.k + (self.k.clamp(min=K_MIN) - self.k).detach()
        return {"slope": self.slope, "scale": k, "floor_straight_through": True}


class Klif(Method):
    name = "klif"
    layer_cls = KLIFDense

    def layer_kwargs(self, cfg) -> dict:
        return {"k_init": float(cfg.klif_k_init)}

    def prepare(self, model, cfg) -> None:
        """``klif_floor = "hidden"``: the output layer keeps k but not the floor (a plain LIF readout)."""
        if cfg.klif_floor == "hidden":
            model.layers[-1].v_floor = False

    def param_groups(self, model, cfg) -> list[dict]:
        """k at ``klif_k_lr`` x lr (frozen at 0), the weights at lr."""
        ks = [layer.k for layer in model.layers]
        rest = [p for p in self.trainable(model) if all(p is not k for k in ks)]
        groups = [{"params": rest}]
        if cfg.klif_k_lr > 0:
            groups.append({"params": ks, "lr": cfg.lr * cfg.klif_k_lr})
        return groups

    def metrics(self, model) -> dict:
        return {"klif_k": [round(float(layer.k.detach()), 4) for layer in model.layers]}
