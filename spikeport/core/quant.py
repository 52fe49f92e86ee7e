"""Float <-> Loihi integer mapping for weights, leaks, thresholds and biases (one place).

Units. A layer's float state (current u, voltage v, threshold theta) is measured in "float input
units". Its Loihi state is the same quantity divided by the layer's *state scale*

    s = weight_scale * input_unit * 2**(-weight_exp)          (float units per synaptic-input unit)

and shifted left by 6 (``loihi.ACT_SHIFT``), so ``v_int = v_float / s * 64``. ``input_unit`` is
1 for binary spikes and ``1 / INPUT_LEVELS`` for direct-encoded (graded) input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeport.core import loihi


def du_from_decay(beta_syn: float) -> int:
    """Current decay factor beta_syn (u <- beta_syn * u + input) to Loihi ``du``.

    Loihi decays u by (4096 - (du + 1)) / 4096, so du = round(4096 * (1 - beta_syn)) - 1, clipped
    to [0, 4095]. beta_syn = 0 (du = 4095) makes a plain, current-free LIF.
    """
    return int(np.clip(round(loihi.DECAY_UNITY * (1.0 - float(beta_syn))) - loihi.DU_OFFSET, 0, loihi.DECAY_MAX))


def dv_from_decay(beta_mem: float) -> int:
    """Voltage decay factor beta_mem to Loihi ``dv`` = round(4096 * (1 - beta_mem)), in [0, 4095]."""
    return int(np.clip(round(loihi.DECAY_UNITY * (1.0 - float(beta_mem))) - loihi.DV_OFFSET, 0, loihi.DECAY_MAX))


def decay_from_du(du: int) -> float:
    """The float factor Loihi applies to u for a given du: (4096 - du - 1) / 4096."""
    return (loihi.DECAY_UNITY - int(du) - loihi.DU_OFFSET) / loihi.DECAY_UNITY


def decay_from_dv(dv: int) -> float:
    return (loihi.DECAY_UNITY - int(dv) - loihi.DV_OFFSET) / loihi.DECAY_UNITY


def weight_scale(weight: np.ndarray) -> float:
    """Symmetric per-layer int8 scale: max|w| / 127 (1.0 for an all-zero matrix)."""
    m = float(np.max(np.abs(weight))) if np.size(weight) else 0.0
    return m / loihi.WEIGHT_MAX if m > 0 else 1.0


def weight_range(wide: bool = False) -> tuple[int, int]:
    """The symmetric integer range a quantizer rounds weights into: int8's, or a wide (16-bit, two-synapse)
    weight's [-32512, 32512] (``core.net``)."""
    return (loihi.WIDE_MIN, -loihi.WIDE_MIN) if wide else (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)


def quantize_wide(weight: np.ndarray, scale: float) -> np.ndarray:
    """round(w / scale) clipped to the wide range, as int16."""
    lo, hi = weight_range(True)
    return np.clip(np.rint(np.asarray(weight, dtype=np.float64) / scale), lo, hi).astype(np.int16)


def quantize_weight(weight: np.ndarray, scale: float) -> np.ndarray:
    """round(w / scale) clipped to the symmetric int8 range, as int8."""
    q = np.clip(np.rint(np.asarray(weight, dtype=np.float64) / scale), loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
    return q.astype(np.int8)


# Largest threshold mantissa the quantizer aims for: (vth << 6) * 128 = 2**23, so u and v can reach
# 128 thresholds before Loihi's 24-bit current wraps. A larger vth buys resolution nobody needs.
VTH_TARGET_MAX = 1 << 10


# netx (lava-dl's HDF5 format) sets no weight exponent of its own: it derives one from the integer weights,
# so the summed input is always exactly q @ x (never shifted right), and it fixes bias_exp at 6. A layer
# quantized for netx therefore has weight_exp = 0: where spikeport would shift the sum right by k, the
# weight step is 2**k coarser instead (the same state scale and vth), and its threshold may use more of
# Lava's 17-bit vth before the step is coarsened (the current bound below still applies).
NETX_VTH_TARGET_MAX = 1 << 13
NETX_BIAS_EXP = 6


# The current never wraps: the quantizer shifts further right until the largest current the layer's
# weights can produce stays inside Loihi's 24-bit u, unless that would leave fewer than VTH_MIN_HEADROOM
# threshold units (then the integer reference still models the wrap exactly, and parity holds).
VTH_MIN_HEADROOM = 32


def peak_current(q: np.ndarray, max_input: int, du: int, k: int) -> float:
    """Upper bound of |u| (Loihi units) for int8 weights q [out, in] driven by integer inputs in
    [0, max_input] every step, after a right shift by k: the larger of the summed positive and summed
    negative weights of any neuron, shifted, times 64, times the synaptic filter's gain 4096 / du."""
    return _current_bound(_weight_sum_peak(q), max_input, du, k)


def _weight_sum_peak(q: np.ndarray) -> int:
    """max over neurons of max(sum of positive weights, sum of |negative weights|)."""
    q = np.asarray(q, dtype=np.int64).reshape(np.shape(q)[0], -1)
    return int(np.maximum(np.clip(q, 0, None).sum(1), np.clip(-q, 0, None).sum(1)).max()) if q.size else 0


def _current_bound(weight_sum: int, max_input: int, du: int, k: int) -> float:
    a = weight_sum * max_input / 2.0**k
    gain = loihi.DECAY_UNITY / du if du > 0 else math.inf
    return (math.ceil(a) + 1) * (1 << loihi.ACT_SHIFT) * gain


def choose_weight_exp(theta: float, s0: float, q: np.ndarray | None = None, max_input: int | None = None,
                      du: int = 4096, vth_max: int = VTH_TARGET_MAX) -> int:
    """Smallest right shift k (weight_exp = -k) that brings vth = round(theta / (s0 * 2**k)) down to
    ``vth_max`` and, given the int8 weights ``q`` and the largest integer input ``max_input`` of one
    synapse per step, keeps :func:`peak_current` below 2**23 (while vth stays >= ``VTH_MIN_HEADROOM``).
    ``s0`` is weight_scale * input_unit; ``du`` the layer's current decay."""
    weight_sum = None if q is None or max_input is None else _weight_sum_peak(q)  # once: QAT calls this every batch
    for k in range(0, 24):
        vth = round(theta / (s0 * 2**k))
        if vth > vth_max:
            continue
        if weight_sum is None or vth <= VTH_MIN_HEADROOM:
            return -k
        if round(theta / (s0 * 2 ** (k + 1))) < VTH_MIN_HEADROOM or \
                _current_bound(weight_sum, max_input, du, k) < loihi.STATE_MAX:
            return -k
    raise ValueError(f"threshold {theta} cannot be expressed with weight scale {s0}")


def threshold_int(theta: float, state_scale: float) -> int:
    """Loihi vth for a float threshold (v spikes when v_int > vth << 6, i.e. v_float > vth * s)."""
    vth = int(round(float(theta) / state_scale))
    if not 0 <= vth <= loihi.VTH_MAX:
        raise ValueError(f"threshold {theta} / scale {state_scale} = {vth} is outside [0, {loihi.VTH_MAX}]")
    return vth


def bias_int(bias: np.ndarray, state_scale: float, exp: int | None = None) -> tuple[np.ndarray, int]:
    """A float per-neuron voltage bias (added to v every step) as Loihi (bias_mant, bias_exp).

    The exact integer is b * 64 / s; the smallest exponent that fits the 13-bit mantissa is used, or
    ``exp`` when given (the mantissa rounded to that grid and clipped: ``NETX_BIAS_EXP`` for netx).
    """
    if exp is not None:
        mant = np.rint(np.asarray(bias, dtype=np.float64) * (1 << loihi.ACT_SHIFT) / state_scale / 2**exp)
        return np.clip(mant, loihi.BIAS_MANT_MIN, loihi.BIAS_MANT_MAX).astype(np.int64), int(exp)
    b = np.rint(np.asarray(bias, dtype=np.float64) * (1 << loihi.ACT_SHIFT) / state_scale)
    peak = float(np.max(np.abs(b))) if b.size else 0.0
    exp = 0
    while peak / 2**exp > loihi.BIAS_MANT_MAX and exp < loihi.BIAS_EXP_MAX:
        exp += 1
    mant = np.clip(np.rint(b / 2**exp), loihi.BIAS_MANT_MIN, loihi.BIAS_MANT_MAX).astype(np.int64)
    return mant, exp


@dataclass(frozen=True)
class LayerQuant:
    """The integer form of one float layer and the float values it stands for.

    weight: int8 [out, in]; weight_exp: applied to the summed input (a = shift(q @ x, weight_exp));
    state_scale s: float units of one synaptic-input unit; lif: the Loihi LIF parameters;
    mask: bool [out, in] of the synapses that exist (None: all; pruned layers deploy as Lava Sparse).
    """

    weight: np.ndarray
    weight_scale: float
    weight_exp: int
    state_scale: float
    lif: loihi.LIFParams
    mask: np.ndarray | None = None
    wide: bool = False  # 16-bit weights, two synapses each (core.net), weight_exp 0

    def masked_weight(self) -> np.ndarray:
        """int8 [out, in] with the synapses outside ``mask`` set to zero (what the network computes with)."""
        return self.weight if self.mask is None else np.where(self.mask, self.weight, 0).astype(self.weight.dtype)

    def dequantized_weight(self) -> np.ndarray:
        """Float weight of the synapses that exist: masked int8 times the layer scale."""
        return self.masked_weight().astype(np.float64) * self.weight_scale

    def float_threshold(self) -> float:
        return self.lif.vth * self.state_scale

    def float_bias(self) -> np.ndarray:
        eff = self.lif.effective_bias().astype(np.float64)
        return eff * self.state_scale / (1 << loihi.ACT_SHIFT)


def quantize_layer(weight: np.ndarray, *, beta_syn: float, beta_mem: float, theta: float,
                   input_unit: float, bias: np.ndarray | None = None, floor_v: bool = False,
                   max_input: int | None = None, netx: bool = False) -> LayerQuant:
    """Quantize one CUBA-LIF layer (float weight [out, in], shared leaks and threshold).
    ``floor_v`` (KLIF) keeps v >= 0 before the threshold (``LIFParams.floor_v``). ``max_input``: the
    largest integer input of one synapse per step (255 for direct-encoded pixels, 1 for spikes, pool**2
    for summed spikes); given, the weight exponent also keeps the current from wrapping
    (:func:`choose_weight_exp`). ``netx``: the integers lava-dl's netx can express (see ``NETX_*``)."""
    ws = weight_scale(weight)
    q = quantize_weight(weight, ws)
    wexp = choose_weight_exp(theta, ws * input_unit, q, max_input, du_from_decay(beta_syn),
                             NETX_VTH_TARGET_MAX if netx else VTH_TARGET_MAX)
    if netx:  # the right shift becomes a coarser weight step: same state scale, exact summed input
        ws, wexp = ws * 2.0 ** (-wexp), 0
        ws = _netx_bias_fit(bias, ws * input_unit) / input_unit
        q = quantize_weight(weight, ws)
    s = ws * input_unit * 2.0 ** (-wexp)
    n_out = q.shape[0]
    mant, bexp = bias_int(bias if bias is not None else np.zeros(n_out), s, NETX_BIAS_EXP if netx else None)
    params = loihi.LIFParams(du=du_from_decay(beta_syn), dv=dv_from_decay(beta_mem),
                             vth=threshold_int(theta, s), bias_mant=mant, bias_exp=bexp, floor_v=bool(floor_v))
    if not math.isfinite(s) or s <= 0:
        raise ValueError("state scale must be positive and finite")
    return LayerQuant(weight=q, weight_scale=ws, weight_exp=wexp, state_scale=s, lif=params)


def integrator_gain(du: int, steps: int) -> float:
    """sum_{t<steps} sum_{j<=t} f**j with f = Loihi's current decay factor for ``du``: how many times one
    step's largest summed input (times 64) can add up in the voltage of an integrator without leak (dv = 0)
    over ``steps`` steps. Loihi's decay rounds toward zero, so the integers stay within it."""
    f = decay_from_du(du)
    if f >= 1.0:
        return steps * (steps + 1) / 2.0
    return sum((1.0 - f ** (t + 1)) / (1.0 - f) for t in range(steps))


def integrator_peak(q: np.ndarray, max_input: int, du: int, k: int, steps: int, bias_peak: float = 0.0) -> float:
    """Upper bound of |v| (Loihi units) of a non-leaking integrator over ``steps`` steps: int8 weights q
    [out, in], integer inputs in [0, max_input], summed input shifted right by k, the current filtered by
    ``du``, an effective voltage bias of at most ``bias_peak`` added every step."""
    a = math.ceil(_weight_sum_peak(q) * max_input / 2.0**k) + 1
    return a * (1 << loihi.ACT_SHIFT) * integrator_gain(du, steps) + steps * float(bias_peak)


def quantize_integrator(weight: np.ndarray, *, beta_syn: float, input_unit: float, steps: int,
                        bias: np.ndarray | None = None, max_input: int = 1, netx: bool = False) -> LayerQuant:
    """Quantize an output layer that never spikes and whose voltage is the result (a membrane readout): a
    LIF with the layer's current decay, no voltage leak (dv = 0) and the threshold lava-dl writes for such a
    block (``loihi.INTEGRATOR_VTH``, out of reach), so v[t] = sum_{t' <= t} (u[t'] + bias).

    There is no threshold to set the state scale, so the weights keep int8's full resolution (scale max|w| /
    127) unless the voltage could saturate: the smallest right shift k of the summed input (``netx``: a
    2**k coarser weight step, weight_exp 0) is taken for which :func:`integrator_peak` over ``steps`` steps
    stays within Loihi's 24-bit v (``loihi.V_LIMIT``), whatever the inputs. Float [out, in] weight, bias
    [out] (per step, float units) or None; ``max_input`` the largest integer input of one synapse per step."""
    ws0 = weight_scale(weight)
    du = du_from_decay(beta_syn)
    n_out = np.shape(weight)[0]
    b = np.zeros(n_out) if bias is None else np.asarray(bias, dtype=np.float64)
    for k in range(0, 24):
        ws, wexp = (ws0 * 2.0**k, 0) if netx else (ws0, -k)
        if netx:
            ws = _netx_bias_fit(b, ws * input_unit) / input_unit
        q = quantize_weight(weight, ws)
        s = ws * input_unit * 2.0 ** (-wexp)
        mant, bexp = bias_int(b, s, NETX_BIAS_EXP if netx else None)
        params = loihi.LIFParams(du=du, dv=0, vth=loihi.INTEGRATOR_VTH, bias_mant=mant, bias_exp=bexp)
        peak_bias = float(np.abs(params.effective_bias()).max(initial=0))
        if integrator_peak(q, max_input, du, 0 if netx else k, steps, peak_bias) <= loihi.V_LIMIT:
            return LayerQuant(weight=q, weight_scale=ws, weight_exp=wexp, state_scale=s, lif=params)
    raise ValueError(f"an integrator of {n_out} neurons over {steps} steps cannot be kept inside 24 bits")


def as_integrator(lq: LayerQuant) -> LayerQuant:
    """The same synapses (weights, exponent, state scale), current decay and voltage bias feeding a
    non-spiking integrator: dv = 0, threshold ``loihi.INTEGRATOR_VTH``, no floor. Its voltage sums the
    current: v[t] = sum_{t' <= t} (u[t'] + bias), while it stays inside 24 bits."""
    lif = loihi.LIFParams(du=lq.lif.du, dv=0, vth=loihi.INTEGRATOR_VTH, bias_mant=lq.lif.bias_mant,
                          bias_exp=lq.lif.bias_exp)
    return LayerQuant(weight=lq.weight, weight_scale=lq.weight_scale, weight_exp=lq.weight_exp,
                      state_scale=lq.state_scale, lif=lif, mask=lq.mask, wide=lq.wide)


def _netx_bias_fit(bias: np.ndarray | None, s: float) -> float:
    """The state scale ``s`` doubled until every bias mantissa round(b / s) on netx's fixed grid (bias_exp 6)
    fits 13 bits (a large folded bias, e.g. bpsrm's normalization shift, needs a coarser state)."""
    peak = float(np.max(np.abs(bias))) if bias is not None and np.size(bias) else 0.0
    while round(peak / s) > loihi.BIAS_MANT_MAX:
        s *= 2.0
    return s


def quantize_feedback(weight: np.ndarray, state_scale: float, netx: bool = False) -> tuple[np.ndarray, int, float]:
    """Weights [out, in] driven by binary spikes into a population whose state scale is already fixed
    (a recurrent connection): (int8 q, weight_exp, weight_scale) with q * 2**weight_exp ~ weight /
    state_scale. weight_exp is the smallest exponent that keeps max |q| <= 127; ``weight_scale`` =
    state_scale * 2**weight_exp is the float value of one unit of q. ``netx``: weight_exp = 0 (netx gives
    a recurrent block one exponent with its input weights), q = round(weight / state_scale) clipped to int8."""
    peak = float(np.max(np.abs(weight))) if np.size(weight) else 0.0
    exp = 0
    if peak > 0 and not netx:
        exp = int(math.ceil(math.log2(peak / (loihi.WEIGHT_MAX * state_scale))))
        exp = int(np.clip(exp, -24, 24))
        while exp < 24 and peak / (state_scale * 2.0**exp) > loihi.WEIGHT_MAX + 0.5:  # float log2 edge cases
            exp += 1
    scale = state_scale * 2.0**exp
    return quantize_weight(weight, scale), exp, scale


def weight_fit(name: str, weight: np.ndarray, scale: float, q_min: int = -127, q_max: int = 127) -> dict | None:
    """Weights whose ``round(w / scale)`` leaves [q_min, q_max] (Loihi's 8 bits): None when all fit,
    else ``{"layer", "count", "worst", "limit"}`` (``worst``: the integer farthest outside)."""
    q = np.rint(np.asarray(weight, dtype=np.float64) / float(scale))
    bad = (q < q_min) | (q > q_max)
    if not bad.any():
        return None
    worst = q[bad][np.argmax(np.abs(q[bad]))]
    return {"layer": name, "count": int(bad.sum()), "worst": int(worst), "limit": [q_min, q_max]}


def describe_misfits(misfits: list[dict]) -> str:
    return "; ".join(f"{m['layer']}: {m['count']} weights (worst {m['worst']}, range {m['limit']})" for m in misfits)
