"""Float neuron dynamics as pure functions ``step(x, state, params) -> (spikes, state)``.

These are the float twins of :func:`spikeport.core.loihi.lif_step` and use the same update order
as Lava's Loihi model, so a quantized float run drifts from the integer run only by rounding:

    u[t] = beta_syn * u[t-1] + x[t]              # synaptic current (x: weighted input of step t)
    v[t] = beta_mem * v[t-1] + u[t] + bias       # membrane voltage
    s[t] = H(v[t] - theta)                       # strict: spikes when v > theta
    v[t] = v[t] * (1 - s[t])                     # reset to zero; u is not reset

Works on numpy arrays and torch tensors. ``spike_fn`` lets training swap the Heaviside for a
surrogate-gradient function; ``v_floor`` (KLIF) applies ReLU to v before firing and reset (True),
or a given function in its place (training: a ReLU whose backward is a surrogate).
Shapes: x, u, v [..., N]; theta scalar; bias [N] or scalar.
"""
from __future__ import annotations

from typing import Callable


def heaviside(z):
    """Forward spike function: 1 where z > 0 (strict, as Loihi's ``v > vth``)."""
    return (z > 0) * 1.0


def cuba_lif_step(x, u, v, *, beta_syn, beta_mem, theta, bias=0.0,
                  spike_fn: Callable = heaviside, v_floor: bool | Callable = False):
    """One float CUBA-LIF step; returns (s, u, v). Float state, same order as Loihi."""
    u = beta_syn * u + x
    v = beta_mem * v + u + bias
    if v_floor:
        v = v_floor(v) if callable(v_floor) else v * (v > 0)
    s = spike_fn(v - theta)
    v = v * (1.0 - s)
    return s, u, v
