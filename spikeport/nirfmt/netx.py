"""What lava-dl 0.6.0's netx does with the integers of a ``model.net`` file, so that spikeport can write
files netx runs exactly, and read files as netx runs them. No lava or lava-dl import here.

Read from lava-dl 0.6.0 (``netx/hdf5.py``, ``netx/utils.py``, ``netx/blocks/process.py``) and lava-nc
0.10.0 (``proc/dense/models.py``, ``utils/weightutils.py``); ``tests/test_netx_rules.py`` checks
:func:`dense_synapse` against those functions themselves.

Neuron (block ``neuron`` group, type ``CUBA``): Lava ``LIF`` / ``LIFReset`` with

    du = iDecay - 1      (Lava decays the current by du + 1, so the factor is 4096 - iDecay)
    dv = vDecay,  vth = vThMant,  bias_mant = the block's ``bias`` (integer),  bias_exp = 6 (fixed)

so a block's effective bias is ``bias << 6``: spikeport's ``bias_mant << bias_exp`` must be a multiple
of 64 to be written.

Dense / dense_rec (``weight`` [out, in], ``weight_rec`` [out, out]; both given to one exponent choice):
netx picks a left shift ``sb`` of the file integers (its ``optimize_weight_bits``), hands
``W << sb`` with ``weight_exp = -sb`` and a bit count to Lava's Dense, which clips by sign mode and
drops low bits. The summed input is ``shift(W_lava @ s, -sb)``; :func:`dense_synapse` computes
``W_lava`` and ``sb``. It equals ``W @ s`` exactly when ``W_lava == W << sb`` (:func:`dense_exact`).

Conv (``weight`` [C_out, C_in/groups, kh, kw], torch layout and cross-correlation; ``stride``,
``padding``, ``dilation`` in (H, W) order; ``shape`` (C, H, W)): netx flips and transposes the kernel
into Lava's Conv, which uses the integers as they are (no clip, no exponent) and wraps its output to
signed 24 bits.

Layout: netx builds every block in Lava's (W, H, C) order; ``flatten`` before a dense block reads a
(W, H, C) output as C-major (C, H, W) flat, spikeport's order. Time: every block's synapse delays by
one step; ``Network(reset_interval=T, reset_offset=r)`` resets block i (0-based) when
``step % T == (r + 1 + i) % T``.
"""
from __future__ import annotations

import math

import numpy as np

NEURON_TYPES = ("CUBA", "LOIHI")  # netx's LIF neuron types
SDNN = "SDNN"  # netx's sigma-delta neuron type (Delta input, Sigma output, SigmaDelta hidden)
BIAS_EXP = 6  # netx fixes Lava's bias_exp at 6
IDECAY_OFFSET = 1  # du = iDecay - 1
GRADED_MESSAGE_BITS = 8  # message bits of a graded (integer) first-layer input, as spikeport's Lava backend
REF_DELAY = 1  # slayer's refDelay (netx ignores it)
LIF_MESSAGE_BITS = 0  # a CUBA block's messageBits when the file has none (binary spikes)
SDNN_MESSAGE_BITS = 16  # an SDNN block's messageBits when the file has none
SPIKE_EXP = 6  # Network(spike_exp=6): where an SDNN payload's binary point sits
TRANSFORM_WEIGHT = 64  # an input block's transform weight when the file has none (netx stores it, never applies it)
# A dense block without a neuron group: netx's "non-leaky integrator" (its vThMant is written 1 << 18 - 1,
# which Python reads as 1 << 17): Lava du = -1 (the current integrates), dv = 4096 (v = u + bias each step),
# a threshold v never reaches.
DEFAULT_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17, "refDelay": 1, "gradedSpike": False}
# neuron fields netx reads into no parameter, with the values that change nothing (others are noted)
HARMLESS_FIELDS = {("refDelay", 1), ("gradedSpike", False), ("activation", "relu")}


def message_bits(value, default: int) -> int:
    """A block's ``messageBits`` (the width of its output payloads; 0: binary), or netx's default."""
    if value is None:
        return int(default)
    bits = int(np.asarray(value).reshape(()))
    if not 0 <= bits <= 24:
        raise NotExact(f"messageBits {bits} outside [0, 24]")
    return bits
MIXED, EXCITATORY, INHIBITORY = "mixed", "excitatory", "inhibitory"


class NotExact(ValueError):
    """The integers cannot be given to netx (or read from it) without changing the arithmetic."""


def _netx_mode(w: np.ndarray) -> str:
    """netx's sign mode (``utils.optimize_weight_bits``): a zero maximum with negative weights is mixed."""
    if w.max() < 0:
        return INHIBITORY
    return EXCITATORY if w.min() >= 0 else MIXED


def _lava_mode(w: np.ndarray) -> str:
    """Lava's sign mode (``determine_sign_mode``): a zero maximum counts as inhibitory."""
    if w.min() >= 0:
        return EXCITATORY
    return INHIBITORY if w.max() <= 0 else MIXED


def _precision_bits(w: np.ndarray) -> int:
    """The largest k <= 8 with every weight a multiple of 2**k (netx's search for spare low bits)."""
    for k in range(8, 0, -1):
        if not np.any(w % (1 << k)):
            return k
    return 0


def dense_synapse(weight) -> tuple[np.ndarray, int]:
    """Integer file weights [out, in] -> (W_lava int64 [out, in], weight_exp): what netx + Lava's fixed_pt
    Dense compute with them, the summed input being ``shift(W_lava @ s, weight_exp)``.

    Raises :class:`NotExact` where netx cannot load the matrix at all (all zeros: its exponent search
    divides by zero; a negative shift, which numpy leaves undefined)."""
    w = np.asarray(weight, dtype=np.int64)
    if w.size == 0 or not np.any(w):
        raise NotExact("an all-zero weight matrix (netx's exponent search divides by zero)")
    mx, mn = int(w.max()), int(w.min())
    mode = _netx_mode(w)
    if mode == MIXED and (mx > 254 or mn < -256):  # netx clips (and warns) before choosing the shift
        w = np.clip(w, -256, 254)
        mx, mn = int(w.max()), int(w.min())
    if mode == MIXED:
        scale = min(127 / mx if mx > 0 else math.inf, -128 / mn)
    else:
        scale = -256 / mn if mode == INHIBITORY else 255 / mx
    signed = int(mode == MIXED)
    sb = int(math.floor(math.log2(scale))) + signed
    if sb < 0:
        raise NotExact(f"weights up to {max(abs(mx), abs(mn))} need a negative netx shift")
    n_bits = 8 - sb - (_precision_bits(w) - signed)  # netx's num_weight_bits
    lw = w << sb
    lmode = _lava_mode(lw)
    neg = -lw if lmode == INHIBITORY else lw  # Lava's clip_weights / truncate_weights, 8 bits
    lo = -(1 << 8) if lmode == MIXED else 0
    neg = np.clip(neg, lo, (1 << 8) - 1)
    drop = 8 - n_bits + int(lmode == MIXED)
    if drop < 0:
        raise NotExact("netx asks Lava for more weight bits than it has")
    neg = (neg >> drop) << drop
    return (-neg if lmode == INHIBITORY else neg), -sb


def dense_exact(weight) -> bool:
    """True when netx + Lava's Dense compute exactly ``weight @ s`` (integers) for every input s."""
    try:
        lw, exp = dense_synapse(weight)
    except NotExact:
        return False
    return bool(np.array_equal(lw, np.asarray(weight, np.int64) << -exp))


def neuron_fields(du: int, dv: int, vth: int) -> dict:
    """The ``neuron`` group of a CUBA block for Lava LIF integers (du, dv, vth)."""
    return {"type": "CUBA", "iDecay": int(du) + IDECAY_OFFSET, "vDecay": int(dv), "vThMant": int(vth),
            "refDelay": REF_DELAY, "gradedSpike": False}


def netx_bias(effective_bias: np.ndarray) -> np.ndarray:
    """spikeport's effective bias (``bias_mant << bias_exp``, int) -> netx's ``bias`` (added as bias << 6);
    :class:`NotExact` unless every value is a multiple of 64."""
    b = np.asarray(effective_bias, dtype=np.int64)
    if np.any(b % (1 << BIAS_EXP)):
        raise NotExact(f"a bias that is not a multiple of {1 << BIAS_EXP} (netx fixes bias_exp = {BIAS_EXP})")
    return b >> BIAS_EXP
