"""``lif``: the baseline. CUBA-LIF MLP, direct encoding, BPTT with a fast-sigmoid surrogate, QAT.

Per layer, float units, step t = 0..T-1 (shapes [B, N]; the same order as Loihi)::

    u[t] = beta_syn * u[t-1] + W x[t]              synaptic current
    v[t] = beta_mem * v[t-1] + u[t] + b            membrane voltage
    s[t] = H(v[t] - theta);  v[t] <- v[t] (1 - s[t])    strict threshold, reset to zero

Backward: dH/dv = 1 / (theta (1 + a |z|)^2) with z = (v - theta) / theta (SuperSpike's fast
sigmoid, slope a = ``surrogate_slope``). Loss: cross-entropy of softmax(c) with c[B, C] the output
spike counts sum_t s[t]; prediction argmax_c (ties: lowest index).
"""
from __future__ import annotations

from spikeport.train.methods.base import Method


class Lif(Method):
    name = "lif"
