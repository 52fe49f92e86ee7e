"""``spikeport import --readout current_sum``: the output population deployed as a chip-side integrator.

The class is the output neuron with the largest synaptic current u summed over the sample. Loihi computes
that sum itself when the output population is a non-spiking integrator (lava-dl's Affine block with
dynamics, as PilotNet's LIF readout is): the same synapses and current decay ``du``, no voltage leak
(``dv = 0``), a threshold v never reaches (``loihi.INTEGRATOR_VTH``). Then, per neuron, integers::

    v[t] = v[t-1] + u[t] + b = sum_{t' <= t} u[t'] + (t + 1) b

read once, at the sample's last step (graph readout ``membrane``, :mod:`spikeport.core.readout`). It is the
summed current exactly (what spikeport computed on the host before, from the spikes reaching the output),
except where:

* the output population has a voltage bias b (a producer's ``v_leak`` / bias on v): v adds T b per neuron
  (kept: it is part of the output neuron's drive; a bias *current*, the bias line, is inside u);
* the output population is recurrent: an integrator never spikes, so its recurrence carries nothing (the
  host sum used the spiking output's own spikes); the recurrent connection is dropped and a note says so;
* v would leave Loihi's 24 bits. :func:`worst_voltage` bounds |v| over all inputs; where that bound passes
  ``loihi.V_LIMIT`` and calibration inputs are given, the peak |v| on them (run in exact integers) is measured
  instead, and the summed input is shifted right (int8 weights: the state scale doubles per bit, the biases
  are re-quantized on it) until the bound, or ``CALIBRATION_HEADROOM`` times the measured peak, fits: an
  approximation the import records, with both figures. A shift floors the per-step sum, so predictions can
  then differ from the exact sum; so can an input beyond the calibrated peak (it saturates v). 16-bit or netx
  layers have no exponent to shift: the bound is recorded as a note.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from spikeport.core import loihi, quant
from spikeport.core.net import LoihiNet, Population
from spikeport.deploy import emulator
from spikeport.importer import quantize as import_quant
from spikeport.importer.lower import LayerPlan

MAX_EXTRA_SHIFT = 16
CALIBRATION_HEADROOM = 4  # measured peak |v| times this must fit 24 bits (two bits for unseen inputs)


def worst_voltage(plan: LayerPlan, ql: import_quant.QLayer, steps: int, max_input: int) -> float:
    """Upper bound of |v| (Loihi units) of the integrator ``ql`` over ``steps`` steps for any integer input
    in [0, max_input] per input value and step: per neuron, the larger of its summed positive and negative
    weights (the whole map, pool folded), shifted, plus its line current, times 64 and the current's gain
    (:func:`spikeport.core.quant.integrator_gain`), plus ``steps`` times its voltage bias."""
    m = import_quant.connection(plan, ql.lq).to_matrix().tocsr()
    pos = np.asarray(m.maximum(0).sum(axis=1)).reshape(-1).astype(np.float64)
    neg = np.asarray((-m).maximum(0).sum(axis=1)).reshape(-1).astype(np.float64)
    a = np.maximum(pos, neg) * max_input * 2.0 ** ql.lq.weight_exp
    a = np.ceil(a) + (ql.lq.weight_exp < 0)  # a right shift floors: one more unit at most
    line = import_quant.line_connection(ql.line)
    if line is not None:
        a = a + np.abs(line.apply(np.ones((1, 1), np.int64))[0])
    bias = np.abs(np.broadcast_to(ql.lq.lif.effective_bias(), a.shape)).astype(np.float64)
    gain = quant.integrator_gain(ql.lq.lif.du, steps)
    return float(np.max(a * (1 << loihi.ACT_SHIFT) * gain + steps * bias, initial=0.0))


def _shifted(ql: import_quant.QLayer, k: int) -> import_quant.QLayer:
    """``ql`` with its summed input shifted k bits further right: the state scale 2**k coarser, the voltage
    bias and the bias line re-quantized on it."""
    lq = ql.lq
    s = lq.state_scale * 2.0**k
    mant, bexp = quant.bias_int(lq.float_bias(), s)
    lif = loihi.LIFParams(du=lq.lif.du, dv=lq.lif.dv, vth=lq.lif.vth, bias_mant=mant, bias_exp=bexp)
    line = None if ql.line is None else import_quant.bias_line(ql.line.float_bias(), s)
    return replace(ql, lq=replace(lq, weight_exp=lq.weight_exp - k, state_scale=s, lif=lif), line=line)


def calibration_peak(plan: LayerPlan, ql: import_quant.QLayer, x_int: np.ndarray, graded: bool) -> int:
    """Largest |v| of the integrator ``ql`` over every step of the calibration inputs x_int [T, B, in]
    (integers into this layer), run exactly (the emulator)."""
    pop = Population("out", plan.size, ql.lq.lif, import_quant.connection(plan, ql.lq),
                     bias_line=import_quant.line_connection(ql.line))
    net = LoihiNet(tuple(plan.conn.in_shape), [pop], x_int.shape[0], graded, output="values")
    return int(np.abs(emulator.run(net, x_int.reshape(x_int.shape[0], x_int.shape[1], -1)).values).max(initial=0))


def output_inputs(plans: list[LayerPlan], layers: list[import_quant.QLayer], x_int: np.ndarray,
                  graded: bool) -> np.ndarray:
    """The integer inputs [T, B, in] of the last layer for network inputs x_int [T, B, ...]: every layer but
    the last run in exact integers, in turn."""
    h = x_int.reshape(x_int.shape[0], x_int.shape[1], -1)
    for i, (plan, ql) in enumerate(zip(plans[:-1], layers[:-1])):
        h = import_quant.run_layer(plan, ql, h, graded and i == 0).astype(np.int64)
    return h


def output_integrator(plan: LayerPlan, ql: import_quant.QLayer, steps: int, max_input: int, netx: bool = False,
                      calib: tuple[np.ndarray, bool] | None = None) -> tuple[import_quant.QLayer, list[str], list[dict]]:
    """The output layer ``ql`` as a non-spiking integrator (module docstring), with (notes, approximations)
    for import.json. ``max_input``: the largest integer input value per step (before any sum pool, which the
    bound folds in); ``calib``: (integer inputs of this layer [T, B, in], graded) to measure the peak on."""
    notes, approx = [], []
    out = replace(ql, lq=quant.as_integrator(ql.lq), rec=None)
    if ql.rec is not None:
        notes.append(f"readout current_sum: output population '{plan.name}' is recurrent; as an integrator it never "
                     "spikes, so its recurrent connection carries nothing and is not deployed (a host-side sum "
                     "included the current of its own spikes)")
    if np.any(out.lq.lif.effective_bias()):
        notes.append(f"readout current_sum: output population '{plan.name}' has a voltage bias b; the integrator's "
                     "voltage is the summed current plus T*b per neuron")
    bound = worst_voltage(plan, out, steps, max_input)
    if bound <= loihi.V_LIMIT:
        return out, notes, approx
    if out.lq.wide or netx:
        notes.append(f"readout current_sum: the output voltage can reach {bound:.3g} on worst-case inputs, beyond "
                     f"Loihi's 24-bit v ({loihi.V_LIMIT}); such inputs saturate it ({'16-bit' if out.lq.wide else 'netx'} "
                     "weights have no exponent to shift)")
        return out, notes, approx

    def fits(cand) -> tuple[bool, str]:
        worst = worst_voltage(plan, cand, steps, max_input)
        if worst <= loihi.V_LIMIT:
            return True, f"worst-case |v| {worst:.3g}"
        if calib is None:
            return False, ""
        peak = calibration_peak(plan, cand, *calib)
        return peak * CALIBRATION_HEADROOM <= loihi.V_LIMIT, f"peak |v| {peak} on {calib[0].shape[1]} calibration " \
                                                               f"samples, x{CALIBRATION_HEADROOM} headroom"
    k, (ok, why) = 0, fits(out)
    while not ok and k < MAX_EXTRA_SHIFT and out.lq.weight_exp - k - 1 >= -24:
        k += 1
        ok, why = fits(_shifted(out, k))
    if k == 0:
        notes.append(f"readout current_sum: worst-case |v| {bound:.3g} exceeds Loihi's 24 bits, the {why}: kept "
                     "unshifted (an input beyond the calibrated peak would saturate v)")
        return out, notes, approx
    shifted = _shifted(out, k)
    what = (f"readout current_sum: output population '{plan.name}': summed input shifted right by {k} more bit(s) "
            f"(worst-case |v| {bound:.3g} > {loihi.V_LIMIT}; now {why})")
    if _scaled_exactly(out, shifted, k):
        notes.append(what + f"; exact: every summed input, bias and line is 2**-{k} times the unshifted one")
    else:
        approx.append({"node": plan.name, "issue": "readout current_sum: the output voltage could saturate",
                       "change": what + "; the sum is floored per step"})
    return shifted, notes, approx


def _scaled_exactly(a: import_quant.QLayer, b: import_quant.QLayer, k: int) -> bool:
    """True when ``b`` (``a`` shifted k bits further right) computes exactly 2**-k times ``a``'s currents and
    voltages: its summed input still shifts left (no flooring) and its biases and line are ``a``'s / 2**k."""
    def line(q):
        c = import_quant.line_connection(q.line)
        return np.zeros(1, np.int64) if c is None else c.apply(np.ones((1, 1), np.int64))[0]
    return b.lq.weight_exp >= 0 and np.array_equal(b.lq.lif.effective_bias() << k, a.lq.lif.effective_bias()) \
        and np.array_equal(line(b) << k, line(a))
