"""Loihi 2's sigma-delta neurons, exactly as Lava's ``lava.proc.sdn`` fixed_pt models compute them.

A sigma-delta population sends graded messages (integer payloads) only when its activation changes by
at least a threshold: a slowly changing input costs few messages. Three kinds, as lava-dl's netx builds
them from a file's ``SDNN`` blocks (:mod:`spikeport.nirfmt.netx`):

* ``delta`` (an input block: Lava ``Delta``): encodes the frame it receives directly on ``a_in``;
* ``sigma_delta`` (a hidden block: ``SigmaDelta``): integrates its synaptic input (sigma), applies
  ReLU (or the identity) to ``sigma + bias`` and encodes the change (delta);
* ``sigma`` (an output block: ``Sigma``): integrates its input and sends the running sum every step
  (a regression output: its payload *is* the value).

One step per neuron, integers, every sum wrapping like Lava's int32 arrays (``w32``)::

    delta:        a = w32(x << (spike_exp + state_exp))            # x: the frame on a_in
    sigma_delta:  sigma = w32(a_in + sigma)
                  a = relu(w32(sigma + bias_eff))                   # identity when relu is off
    both:         d = w32(a - act + residue)
                  s = d if |d| >= vth_eff else 0                    # ">=", not ">"
                  residue = w32(d - s);  act = a
                  payload = s >> state_exp                          # arithmetic shift (floor)
    sigma:        sigma = w32(a_in + sigma);  payload = sigma

with ``vth_eff = vth << (spike_exp + state_exp)`` and ``bias_eff = w32(bias << (spike_exp + state_exp))``.
Units: ``a_in`` is a synaptic sum of payloads (units of ``2**-spike_exp``), state lives ``state_exp``
bits finer. netx fixes ``state_exp = 6`` and takes ``spike_exp`` from ``Network(spike_exp=...)``
(default 6). ``tests/test_sigma_delta.py`` checks these equations against Lava itself.

Works on numpy and torch integer arrays alike (int64 in, int64 out).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spikeport.core.loihi import wrap_int32

KINDS = ("delta", "sigma_delta", "sigma")
STATE_EXP = 6  # netx: every SDNN block's state_exp
SPIKE_EXP = 6  # netx: Network(spike_exp=6) by default
MESSAGE_BITS = 16  # netx's default payload width of an SDNN block (messageBits)
EXP_MAX = 7  # Lava keeps spike_exp and state_exp as 3-bit values
VTH_MAX = (1 << 24) - 1  # Lava's vth precision (24 bits)


@dataclass(frozen=True)
class SigmaDeltaParams:
    """Integer parameters of one sigma-delta population (one Lava ``Delta`` / ``SigmaDelta`` / ``Sigma``).

    ``vth``: the file's ``vThMant`` (unused by ``sigma``); ``bias``: per neuron ([N] or scalar, ``sigma_delta``
    only), before the ``spike_exp + state_exp`` shift; ``relu``: ReLU activation (else the identity). The
    payload width netx declares is the population's ``message_bits`` (Lava's CPU model does not truncate
    payloads to it)."""

    kind: str
    vth: int = 0
    bias: Any = 0
    spike_exp: int = SPIKE_EXP
    state_exp: int = STATE_EXP
    relu: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sigma-delta kind {self.kind!r} is not one of {KINDS}")
        for name, lo, hi in (("vth", 0, VTH_MAX), ("spike_exp", 0, EXP_MAX), ("state_exp", 0, EXP_MAX)):
            val = getattr(self, name)
            if not (isinstance(val, (int, np.integer)) and lo <= int(val) <= hi):
                raise ValueError(f"sigma-delta {name}={val!r} is outside [{lo}, {hi}]")
        if int(self.vth) << self.shift >= 1 << 31:
            raise ValueError(f"sigma-delta vth {self.vth} << {self.shift} does not fit Lava's int32 state")
        if self.kind != "sigma_delta" and np.any(np.asarray(self.bias)):
            raise ValueError(f"a {self.kind} population has no bias")

    @property
    def shift(self) -> int:
        """spike_exp + state_exp: how far thresholds, biases and a delta's input sit above a payload."""
        return int(self.spike_exp) + int(self.state_exp)

    @property
    def threshold(self) -> int:
        """What |delta| is compared with: vth << (spike_exp + state_exp)."""
        return int(self.vth) << self.shift

    def effective_bias(self) -> np.ndarray:
        """bias << (spike_exp + state_exp), wrapped to int32 as Lava's int32 multiply does; int64."""
        return wrap_int32(np.asarray(self.bias, dtype=np.int64) << self.shift)


def _where(cond, a, b):
    if type(cond).__module__.startswith("torch"):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def encode(act_new, act, residue, params: SigmaDeltaParams):
    """The delta stage shared by ``delta`` and ``sigma_delta``: (payload, act, residue), int64."""
    d = wrap_int32(act_new - act + residue)
    s = _where(wrap_int32(abs(d)) >= params.threshold, d, d * 0)  # int32 |x|: |-2**31| stays negative
    return s >> int(params.state_exp), act_new, wrap_int32(d - s)


def step(a_in, state: tuple, params: SigmaDeltaParams, bias=None):
    """One step. ``a_in`` [..., N] integers (the frame for ``delta``, the synaptic sum otherwise); ``state``
    (sigma, act, residue), each [..., N] int64 (zeros at the start of a sample). Returns (payload, state)."""
    sigma, act, residue = state
    if params.kind == "sigma":
        sigma = wrap_int32(a_in + sigma)
        return sigma, (sigma, act, residue)
    if params.kind == "delta":
        new = wrap_int32(a_in << params.shift)
    else:
        sigma = wrap_int32(a_in + sigma)
        pre = wrap_int32(sigma + (params.effective_bias() if bias is None else bias))
        new = pre.clip(0, None) if params.relu else pre
    payload, act, residue = encode(new, act, residue, params)
    return payload, (sigma, act, residue)
