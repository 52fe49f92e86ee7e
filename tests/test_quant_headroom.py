"""core.quant: the weight exponent keeps Loihi's 24-bit current from wrapping (hand-computed bound and a
worst-case input run through core.loihi.lif_step)."""
from __future__ import annotations

import numpy as np

from spikeport.core import loihi, quant


def test_peak_current_hand_computed():
    q = np.array([[3, -2, 5], [-7, 1, 0]])
    # per neuron max(sum of positive, sum of |negative|) = 8 and 7; x 2 (max input) / 2**1 (shift) = 8;
    # (8 + 1) * 64 (ACT_SHIFT) * 4096 / 2048 (synaptic filter gain, beta_syn 0.5)
    assert quant.peak_current(q, max_input=2, du=2048, k=1) == 9 * 64 * 2


def _wrapped(lq, steps=40) -> bool:
    """Every input at its maximum (255): does Loihi's current (core.loihi.lif_step) ever differ from the
    same recursion in unbounded integers, u = tz(u (4095 - du) / 4096) + (a << 6)?"""
    x = np.full((1, lq.weight.shape[1]), 255, dtype=np.int64)
    a = loihi.shift_exp(x @ lq.weight.astype(np.int64).T, lq.weight_exp)[0]
    u = v = exact = np.zeros(a.shape, dtype=np.int64)
    for _ in range(steps):
        _, u, v = loihi.lif_step(u, v, a, lq.lif)
        exact = loihi.decay(exact, lq.lif.du, loihi.DU_OFFSET) + (a << loihi.ACT_SHIFT)
        if not np.array_equal(u, exact):
            return True
    assert exact.min() < -loihi.STATE_MAX // 8  # the run did drive the current far
    return False


def test_exponent_keeps_the_worst_case_current_inside_24_bits():
    w = np.full((2, 784), -0.5)
    w[1, :10] = 0.3  # a second neuron, to take the max over neurons
    kw = dict(beta_syn=0.5, beta_mem=0.9, theta=1.0, input_unit=1 / 255)
    lq = quant.quantize_layer(w, **kw, max_input=255)
    assert not _wrapped(lq)
    assert lq.lif.vth >= quant.VTH_MIN_HEADROOM
    # without the bound (the exponent chosen from the threshold alone) the same layer wraps to positive
    old = quant.quantize_layer(w, **kw)
    assert old.lif.vth > lq.lif.vth
    assert _wrapped(old)


def test_exponent_unchanged_where_the_current_cannot_wrap():
    w = np.random.default_rng(0).normal(0, 0.05, (16, 20))
    a = quant.quantize_layer(w, beta_syn=0.5, beta_mem=0.9, theta=1.0, input_unit=1.0, max_input=1)
    b = quant.quantize_layer(w, beta_syn=0.5, beta_mem=0.9, theta=1.0, input_unit=1.0)
    assert a.weight_exp == b.weight_exp and a.lif.vth == b.lif.vth
