"""SynSense Xylo Audio 2's (SYNS61201) integer neuron, exactly as SynSense's simulator ``xylosim`` computes it.

This module is the single source of Xylo's constants and equations, beside :mod:`spikeport.core.loihi`
for Loihi. The training modules' integer forward, the batched emulator (:mod:`spikeport.deploy.xylo_emulator`)
and the limits check all call it.

One time step of the whole chip (``xylosim.v2.XyloLayer.evolve``, integers, 16-bit signed state):

1. **Deliver** this step's input events (channel counts, at most 15 per channel), then the hidden
   neurons' spikes of the previous step (counts, at most 31) to the hidden neurons, then those same
   previous-step hidden spikes to the output neurons. Each delivered event adds ``w << shift`` (the
   connection's per-matrix left shift) to the target synaptic current with **saturation at every
   event**: ``i = clip(i + w << shift, -2**15, 2**15 - 1)``, sources in index order, each source's
   ``count`` events one after another (:func:`deliver`). Hidden neurons have two synaptic currents
   (synapse 0 and 1), output neurons one.
2. **Evolve** each neuron (hidden, then output)::

       i_k  -= decay(i_k, dash_syn_k)                   # every synaptic current k
       dv    = wrap16(-decay(v, dash_mem))              # 16-bit: -(-2**15) wraps to -2**15
       dv    = sat16(dv + sum_k i_k)                    # the currents' sum itself is not saturated
       dv    = sat16(dv + bias)                         # only when some neuron of the chip has a bias
       v     = sat16(v + dv)
       n     = min(max_spikes, v // threshold) if v >= threshold else 0   # 31 hidden, 1 output
       v    -= n * threshold                            # subtractive reset

   with ``decay(x, dash) = x >> dash`` (arithmetic shift, floor), or ``sign(x)`` where that is 0: a
   value always moves at least one unit toward zero, so the decay factor is ``1 - 2**-dash``.

Time: hidden spikes of step t reach the hidden neurons (recurrence) and the output neurons at step
t + 1; input events of step t reach the hidden neurons at step t.

Chip limits (Xylo Audio 2; :func:`check_counts` and :class:`spikeport.core.xylo_net.XyloNet` enforce them:
``xylosim`` itself checks almost none) are named below with their sources.

Works on numpy integer arrays (int64 inside).
"""
from __future__ import annotations

import numpy as np

# --- constants (named once) --------------------------------------------------------------------
STATE_BITS = 16  # synaptic currents and membrane potentials: signed 16 bit, saturating
STATE_MIN, STATE_MAX = -(1 << (STATE_BITS - 1)), (1 << (STATE_BITS - 1)) - 1
WEIGHT_BITS = 8  # every weight is a signed 8-bit integer
WEIGHT_MIN, WEIGHT_MAX = -(1 << (WEIGHT_BITS - 1)), (1 << (WEIGHT_BITS - 1)) - 1
DASH_BITS = 4  # bit-shift decay parameters (dash) are 4-bit registers: 0..15
DASH_MAX = (1 << DASH_BITS) - 1
SHIFT_MAX = 15  # per-matrix weight left shift: a 4-bit register (Rockpool's register map: ctrl1 iwbs/hwbs/owbs)
THRESHOLD_MIN, THRESHOLD_MAX = 1, STATE_MAX  # spikeport refuses thresholds <= 0 (see limits)
BIAS_MIN, BIAS_MAX = STATE_MIN, STATE_MAX

# Xylo Audio 2 resources (Rockpool's Xylo overview, rockpool.ai/devices/xylo-overview.html, and the
# simulator's own constants MAX_NUM_INP_SPIKES / MAX_NUM_SPIKES / MAX_NUM_OUT_SPIKES)
INPUT_CHANNELS = 16
HIDDEN_MAX = 1000
OUTPUT_MAX = 8
HIDDEN_SYNAPSES = 2  # synaptic currents per hidden neuron
OUTPUT_SYNAPSES = 1
INPUT_EVENTS_MAX = 15  # events per input channel per step
HIDDEN_SPIKES_MAX = 31  # spikes per hidden neuron per step
OUTPUT_SPIKES_MAX = 1
FANOUT_MAX = 64  # recurrent targets of one hidden neuron ("max. fanout 64")
RECURRENT_ENTRIES_MAX = 32 * HIDDEN_MAX  # "avg. fanout 32" over 1000 hidden neurons: the fan-out memory


def sat16(x):
    """Saturate int64 values into the signed 16-bit state range."""
    return np.clip(x, STATE_MIN, STATE_MAX)


def wrap16(x):
    """Two's-complement wrap of int64 values into signed 16 bits (a C ``int16_t`` assignment)."""
    return ((np.asarray(x, np.int64) - STATE_MIN) & ((1 << STATE_BITS) - 1)) + STATE_MIN


def decay(x, dash):
    """Xylo's bit-shift decay step: ``x >> dash``, or ``sign(x)`` where that is 0 (``x`` int64, any shape;
    ``dash`` broadcast). The new value is ``x - decay(x, dash)``."""
    x = np.asarray(x, np.int64)
    q = x >> np.asarray(dash, np.int64)
    return np.where(q == 0, np.sign(x), q)


def decay_factor(dash) -> np.ndarray:
    """The float factor one bit-shift decay step multiplies by: 1 - 2**-dash (0 for dash 0)."""
    return 1.0 - np.exp2(-np.asarray(dash, np.float64))


def dash_from_factor(beta) -> np.ndarray:
    """The dash whose factor 1 - 2**-dash is nearest to ``beta`` (in log(1 - beta), i.e. in time constant),
    clipped to 0..15. beta <= 0 gives 0."""
    beta = np.clip(np.asarray(beta, np.float64), 0.0, 1.0 - 2.0**-20)
    return np.clip(np.rint(-np.log2(np.maximum(1.0 - beta, 2.0**-20))), 0, DASH_MAX).astype(np.int64)


def deliver(state, counts, weight, split=None):
    """Add ``counts`` [B, S] events of each source through ``weight`` [S, N] (already shifted, int64) to
    ``state`` [B, N], saturating after every event, sources in index order (xylosim's delivery).
    ``split``: ``(max(weight, 0), min(weight, 0))`` as float64, when the caller keeps them.

    Fast path: where no partial sum can leave the 16-bit range (the state plus all positive, and plus all
    negative contributions both stay inside) the plain sum is exact; the rest replay the events in order.
    A source's ``count`` events all have the same sign, so they saturate as one ``count * w`` step.
    The sums are float64 products of integers below 2**53: exact."""
    state = np.asarray(state, np.int64)
    counts = np.asarray(counts)
    if counts.size == 0 or not counts.any():
        return state.copy()
    w = np.asarray(weight, np.int64)
    wpos, wneg = split if split is not None else (np.maximum(w, 0).astype(np.float64),
                                                  np.minimum(w, 0).astype(np.float64))
    c = counts.astype(np.float64)
    pos = np.rint(c @ wpos).astype(np.int64)
    neg = np.rint(c @ wneg).astype(np.int64)
    out = state + pos + neg
    risky = (state + pos > STATE_MAX) | (state + neg < STATE_MIN)
    if risky.any():
        bs, ns = np.nonzero(risky)
        counts = counts.astype(np.int64)
        for lo in range(0, len(bs), REPLAY_BLOCK):
            b, n = bs[lo:lo + REPLAY_BLOCK], ns[lo:lo + REPLAY_BLOCK]
            out[b, n] = _replay(state[b, n], counts[b] * w[:, n].T)
    return out


REPLAY_BLOCK = 4096  # risky (sample, neuron) pairs replayed at once: [block, sources] increments in memory


def _replay(x: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """x [R] after adding inc [R, S] column by column (source order), saturating after each."""
    x = x.copy()
    for s in np.flatnonzero(inc.any(axis=0)):
        np.add(x, inc[:, s], out=x)
        np.maximum(x, STATE_MIN, out=x)
        np.minimum(x, STATE_MAX, out=x)
    return x


def evolve(isyn: list, v, *, dash_syn: list, dash_mem, threshold, max_spikes: int, bias=None):
    """One neuron update after delivery (step 2 of the module docstring), all int64 [B, N].

    ``isyn``: the synaptic currents (one array per synapse); ``bias``: per-neuron bias, or None when the
    chip has none. Returns (spike counts, currents, v)."""
    isyn = [i - decay(i, d) for i, d in zip(isyn, dash_syn)]
    dv = wrap16(-decay(v, dash_mem))
    dv = sat16(dv + sum(isyn))
    if bias is not None:
        dv = sat16(dv + np.asarray(bias, np.int64))
    v = sat16(np.asarray(v, np.int64) + dv)
    th = np.asarray(threshold, np.int64)
    n = np.where(v >= th, np.minimum(v // th, max_spikes), 0)
    return n, isyn, v - n * th


def check_counts(x, where: str = "input") -> None:
    """Raise ValueError unless ``x`` holds integer event counts in 0..INPUT_EVENTS_MAX."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise ValueError(f"{where}: Xylo input events must be integers, got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > INPUT_EVENTS_MAX):
        raise ValueError(f"{where}: Xylo input events must lie in 0..{INPUT_EVENTS_MAX} per channel per step, "
                         f"got {int(x.min())}..{int(x.max())}")
