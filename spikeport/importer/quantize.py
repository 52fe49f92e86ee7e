"""Float layers (:class:`~spikeport.importer.lower.LayerPlan`) -> Loihi integers, one scale per layer
chosen to minimize the layer's output error.

Units follow :mod:`spikeport.core.quant`: a layer's float state is measured in float input units and
its Loihi state is that divided by the state scale ``s = weight_scale * input_unit * 2**(-weight_exp)``
(then shifted by 6). For each layer the quantizer tries clip levels ``c`` (weight_scale =
``c * max|W| / 127``; weights beyond saturate at +-127) and weight exponents that put the threshold
mantissa ``vth`` between 2**10 and 2**16. With calibration inputs it runs every candidate in exact
integer arithmetic on the float reference's input spikes of that layer and keeps the one whose output
spikes differ least from the float reference's; without, the one with the least weight error.

The recurrent matrix shares the state scale: its exponent is the smallest that does not clip it. So
does a layer's bias line (a constant current into u, :attr:`LayerPlan.current`): an int8 weight per
neuron on an input that spikes every step, ``q << e`` with the smallest ``e >= 0`` that does not clip
(a right shift of one line's input would only floor it).

With ``wide`` (``spikeport import --weight-bits 16``), a dense layer's feed-forward, recurrent and bias-line
weights are 16-bit (:mod:`spikeport.core.net`: two Loihi synapses per weight, weight_exp 0): the state scale
is the largest of what the clipped feed-forward weights, the recurrent weights and the line need to fit
[-32512, 32512] and what keeps vth <= 2**16; calibration then chooses the clip level as above. Conv and pool
layers stay 8-bit (Lava's Conv has no exponent to put a high byte at).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikeport.core import loihi, quant
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.quant import LayerQuant
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.importer.lower import LayerPlan
from spikeport.nirfmt.line import BiasLine
from spikeport.nirfmt.spec import LINE_EXP_MAX

CLIPS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
VTH_LOW, VTH_HIGH = 1 << 10, 1 << 16  # threshold mantissa range searched (headroom 2**23 / (vth << 6) >= 2)
EXP_LIMIT = 16


@dataclass
class QLayer:
    """One quantized layer: ``lq`` (feed-forward int8 weights and the LIF integers), ``rec`` (recurrent
    weights or None), ``line`` (the bias line, per neuron, or None) and ``report`` (errors, choices)."""

    lq: LayerQuant
    rec: LayerQuant | None = None
    line: BiasLine | None = None
    report: dict = field(default_factory=dict)


@dataclass
class InputSpec:
    """How float inputs become Loihi integers: ``x_int = round(x / unit)``; ``graded``: integer payloads
    (Lava ``num_message_bits=8``) rather than 0/1 spikes; ``max_error``: worst |x - x_int * unit|."""

    unit: float
    graded: bool
    max_error: float = 0.0

    def to_int(self, x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, np.float64) / self.unit).astype(np.int64)


def input_spec(x: np.ndarray | None, levels: int = 255) -> InputSpec:
    """Binary spikes stay 0/1; integers in 0..levels are graded as they are; other non-negative
    floats are scaled to 0..levels (``max_error`` says what that costs)."""
    if x is None:
        return InputSpec(1.0, False)
    x = np.asarray(x, np.float64)
    if np.any(x < 0):
        raise SpikeportError("inputs: negative values cannot be sent to Loihi as spikes")
    if np.all((x == 0) | (x == 1)):
        return InputSpec(1.0, False)
    if np.all(x == np.rint(x)) and x.max() <= levels:
        return InputSpec(1.0, True)
    unit = float(x.max()) / levels
    worst = float(np.max(np.abs(x - np.rint(x / unit) * unit)))
    return InputSpec(unit, True, worst if worst > 1e-6 * float(x.max()) else 0.0)  # float32 noise is exact


def _exponents(theta: float, s0: float) -> list[int]:
    """Weight exponents e (a = shift(q @ x, e)) that put vth = theta / (s0 * 2**-e) in [2**10, 2**16]."""
    vth0 = theta / s0
    lo = math.floor(math.log2(VTH_LOW / vth0)) if vth0 > 0 else 0
    hi = math.floor(math.log2(VTH_HIGH / vth0)) if vth0 > 0 else 0
    return [e for e in range(lo, hi + 1) if -EXP_LIMIT <= e <= EXP_LIMIT] or [max(-EXP_LIMIT, min(EXP_LIMIT, lo))]


def _vth(theta: float, s: float, threshold: str) -> int:
    x = theta / s
    vth = math.ceil(x - 1e-9) - 1 if threshold == ">=" else round(x)
    if not 0 <= vth <= loihi.VTH_MAX:
        raise ValueError(f"threshold {theta} / scale {s} = {vth} outside [0, {loihi.VTH_MAX}]")
    return int(vth)


WIDE_SYM = -loihi.WIDE_MIN  # 32512: the symmetric range of a wide weight
WIDE_COARSER = (0, 1, 2, 3, 4, 5)  # wide candidates: the finest state scale and up to 32x coarser


def _peak(a) -> float:
    return float(np.max(np.abs(a))) if a is not None and np.size(a) else 0.0


def wide_state_scale(weight, recurrent, current, theta: float, unit: float, clip: float, coarser: int) -> float:
    """State scale (float value of one summed-input unit) of a wide layer: the finest on which the clipped
    feed-forward weights (``clip * max|w|``, in input units ``unit``), the recurrent weights and the line
    current fit 16 bits and vth stays <= 2**16, times ``2**coarser``."""
    s = max(clip * _peak(weight) * unit, _peak(recurrent), _peak(current)) / WIDE_SYM
    return (max(s, theta / VTH_HIGH) if s > 0 else theta / VTH_HIGH) * 2.0**coarser


def wide_line(current: np.ndarray, s: float) -> BiasLine:
    """A wide bias line: 16-bit integers at weight_exp 0 on state scale ``s``."""
    return BiasLine(quant.quantize_wide(current, s).astype(np.int64), 0, s, wide=True)


def _wide_candidate(plan: LayerPlan, unit: float, clip: float, coarser: int, threshold: str) -> QLayer:
    """A dense layer with 16-bit feed-forward, recurrent and line weights at weight_exp 0 (module docstring),
    its state scale ``2**coarser`` times the finest that fits (headroom for the 24-bit current)."""
    s = wide_state_scale(plan.conn.weight, plan.recurrent, plan.current, plan.theta, unit, clip, coarser)
    ws = s / unit
    mant, bexp = quant.bias_int(plan.bias, s)
    lif = loihi.LIFParams(du=quant.du_from_decay(plan.beta_syn), dv=quant.dv_from_decay(plan.beta_mem),
                          vth=_vth(plan.theta, s, threshold), bias_mant=mant, bias_exp=bexp)
    lq = LayerQuant(weight=quant.quantize_wide(plan.conn.weight, ws), weight_scale=ws, weight_exp=0, state_scale=s,
                    lif=lif, wide=True)
    rec = None if plan.recurrent is None else LayerQuant(weight=quant.quantize_wide(plan.recurrent, s), weight_scale=s,
                                                         weight_exp=0, state_scale=s, lif=lif, wide=True)
    return QLayer(lq, rec, None if plan.current is None else wide_line(plan.current, s))


NETX_VTH_CAPS = (13, 14, 15, 16)  # netx candidates: vth at most 2**k (calibration chooses; without it 2**13)


def _netx_candidate(plan: LayerPlan, unit: float, clip: float, cap: int, threshold: str) -> QLayer:
    """What lava-dl's netx expresses (``core.quant.NETX_*``): weight_exp 0 (the weight step coarsened where the
    threshold would leave vth <= 2**cap), bias_exp 6, the recurrent weights on the same state scale; no line."""
    if plan.current is not None:
        raise ValueError(f"layer '{plan.name}': a bias line has no netx block")
    wmax = _peak(plan.conn.weight)
    s = (clip * wmax / loihi.WEIGHT_MAX if wmax > 0 else 1.0) * unit
    s = quant._netx_bias_fit(plan.bias, max(s, plan.theta / 2.0**cap))
    mant, bexp = quant.bias_int(plan.bias, s, quant.NETX_BIAS_EXP)
    lif = loihi.LIFParams(du=quant.du_from_decay(plan.beta_syn), dv=quant.dv_from_decay(plan.beta_mem),
                          vth=_vth(plan.theta, s, threshold), bias_mant=mant, bias_exp=bexp)
    w = plan.conn.weight
    q = np.zeros((0, 0), np.int8) if w is None else quant.quantize_weight(w, s / unit)
    rec = None
    if plan.recurrent is not None:
        q_rec, _, ws_rec = quant.quantize_feedback(plan.recurrent, s, netx=True)
        rec = LayerQuant(weight=q_rec, weight_scale=ws_rec, weight_exp=0, state_scale=s, lif=lif)
    return QLayer(LayerQuant(weight=q, weight_scale=s / unit, weight_exp=0, state_scale=s, lif=lif), rec)


def _wide_headroom(plan: LayerPlan, unit: float, clip: float, graded: bool) -> int:
    """Without calibration inputs: the least ``coarser`` (of WIDE_COARSER) whose worst-case current (every
    input at its largest, every recurrent neuron spiking, the line) cannot wrap Loihi's 24-bit u."""
    for coarser in WIDE_COARSER:
        ql = _wide_candidate(plan, unit, clip, coarser, ">")
        rows = [np.asarray(ql.lq.weight, np.int64).reshape(plan.size, -1) * (255 if graded else 1)]
        rows += [np.asarray(q.weight, np.int64).reshape(plan.size, -1) for q in (ql.rec,) if q is not None]
        rows += [] if ql.line is None else [np.asarray(ql.line.weight, np.int64).reshape(plan.size, 1)]
        a = np.concatenate(rows, axis=1)
        peak = int(np.maximum(np.clip(a, 0, None).sum(1), np.clip(-a, 0, None).sum(1)).max())
        if quant._current_bound(peak, 1, ql.lq.lif.du, 0) < loihi.STATE_MAX:
            return coarser
    return WIDE_COARSER[-1]


def _candidate(plan: LayerPlan, unit: float, clip: float, exp: int, threshold: str):
    w = plan.conn.weight
    wmax = float(np.max(np.abs(w))) if w is not None and w.size else 0.0
    ws = clip * wmax / loihi.WEIGHT_MAX if wmax > 0 else 1.0
    s = ws * unit * 2.0 ** (-exp)
    mant, bexp = quant.bias_int(plan.bias, s)
    lif = loihi.LIFParams(du=quant.du_from_decay(plan.beta_syn), dv=quant.dv_from_decay(plan.beta_mem),
                          vth=_vth(plan.theta, s, threshold), bias_mant=mant, bias_exp=bexp)
    q = np.zeros((0, 0), np.int8) if w is None else quant.quantize_weight(w, ws)
    lq = LayerQuant(weight=q, weight_scale=ws, weight_exp=exp, state_scale=s, lif=lif)
    rec = None
    if plan.recurrent is not None:
        rmax = float(np.max(np.abs(plan.recurrent)))
        e_rec = math.ceil(math.log2(rmax / (loihi.WEIGHT_MAX * s))) if rmax > 0 else 0
        e_rec = max(-EXP_LIMIT, min(EXP_LIMIT, e_rec))
        ws_rec = s * 2.0 ** e_rec
        rec = LayerQuant(weight=quant.quantize_weight(plan.recurrent, ws_rec), weight_scale=ws_rec,
                         weight_exp=e_rec, state_scale=s, lif=lif)
    return QLayer(lq, rec, None if plan.current is None else bias_line(plan.current, s))


def bias_line(current: np.ndarray, s: float) -> BiasLine:
    """A constant current into u (float [out], per step) as an always-on line on state scale ``s``:
    int8 q [out] and e >= 0 with (q << e) * s ~ current."""
    a = np.asarray(current, np.float64) / s
    peak, e = float(np.max(np.abs(a))) if a.size else 0.0, 0
    while peak / 2.0**e > loihi.WEIGHT_MAX + 0.5 and e < LINE_EXP_MAX:
        e += 1
    q = np.clip(np.rint(a / 2.0**e), loihi.WEIGHT_MIN, loihi.WEIGHT_MAX).astype(np.int64)
    return BiasLine(q, e, s)


def line_connection(line: BiasLine | None, name: str = "line") -> Connection | None:
    """The deploy-side bias line (dense [out, 1]) of a quantized layer."""
    return None if line is None else line.connection(name)


def connection(plan: LayerPlan, lq: LayerQuant, name: str = "w") -> Connection:
    """The deploy-side Connection of a quantized layer (``plan.conn``'s geometry, ``lq``'s integers)."""
    c = plan.conn
    pool = None if c.pool is None else Pool2d(*c.pool)
    if c.kind == "pool":
        return Connection(name, lq.weight, 0, kind="pool", in_shape=c.in_shape, pool=pool)
    if c.kind == "conv":
        return Connection(name, lq.weight, lq.weight_exp, kind="conv", in_shape=c.in_shape, pool=pool,
                          stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups)
    return Connection(name, lq.weight, lq.weight_exp, in_shape=c.in_shape if pool is not None else (),
                      pool=pool, wide=lq.wide)


def run_layer(plan: LayerPlan, ql: QLayer, x_int: np.ndarray, graded: bool) -> np.ndarray:
    """Exact integer run of one layer on x_int [T, B, in]; spikes [T, B, out] bool."""
    T, lq, rec = x_int.shape[0], ql.lq, ql.rec
    pop = Population("layer", plan.size, lq.lif, connection(plan, lq),
                     None if rec is None else Connection("rec", rec.weight, rec.weight_exp, wide=rec.wide),
                     bias_line=line_connection(ql.line))
    net = LoihiNet(tuple(plan.conn.in_shape), [pop], T, graded)
    return emulator.run(net, x_int.reshape(T, x_int.shape[1], -1)).spikes[0]


def _errors(plan: LayerPlan, ql: QLayer) -> dict:
    def one(w: np.ndarray, q: LayerQuant) -> tuple[float, float]:
        wq = q.weight.astype(np.float64) * q.weight_scale
        norm = float(np.linalg.norm(w)) or 1.0
        q_max = quant.weight_range(q.wide)[1]
        clipped = float(np.mean(np.abs(w) > (q_max + 0.5) * q.weight_scale)) if w.size else 0.0
        return float(np.linalg.norm(w - wq)) / norm, clipped

    lq, rec = ql.lq, ql.rec
    out = {"weight_rel_error": 0.0, "clipped_fraction": 0.0}
    if plan.conn.weight is not None:
        out["weight_rel_error"], out["clipped_fraction"] = one(plan.conn.weight, lq)
        out["clipped"] = quant.weight_fit(plan.name, plan.conn.weight, lq.weight_scale,
                                          *quant.weight_range(lq.wide))  # count, worst; None: none
    if rec is not None:
        out["recurrent_rel_error"], out["recurrent_clipped_fraction"] = one(plan.recurrent, rec)
        out["recurrent_clipped"] = quant.weight_fit(plan.name + " recurrent", plan.recurrent, rec.weight_scale,
                                                    *quant.weight_range(rec.wide))
    if ql.line is not None:
        err = np.linalg.norm(plan.current - ql.line.float_bias()) / (np.linalg.norm(plan.current) or 1.0)
        out["bias_line"] = {"weight_exp": int(ql.line.weight_exp), "rel_error": float(err)}
    theta_q = lq.lif.vth * lq.state_scale
    out["threshold_rel_error"] = abs(theta_q - plan.theta) / plan.theta
    return out


def quantize_layer(plan: LayerPlan, unit: float, graded: bool, threshold: str = ">",
                   calib_in: np.ndarray | None = None, calib_target: np.ndarray | None = None, wide: bool = False,
                   netx: bool = False):
    """The best :class:`QLayer` (its ``report`` filled) for one layer (see module docstring).
    ``calib_in`` [T, B, in] integers; ``calib_target`` [T, B, out] bool float-reference spikes; ``wide``:
    16-bit weights where the layer is dense; ``netx``: only what lava-dl's netx expresses (``_netx_candidate``)."""
    best = None
    w = plan.conn.weight
    wide = wide and plan.conn.kind == "dense" and w is not None
    for clip in (CLIPS if w is not None else (1.0,)):
        wmax = float(np.max(np.abs(w))) if w is not None and w.size else 0.0
        ws = clip * wmax / loihi.WEIGHT_MAX if wmax > 0 else 1.0
        exps = _exponents(plan.theta, ws * unit)
        if calib_in is None:
            exps = [exps[0] if exps[0] >= 0 else min(0, exps[-1])]
        if plan.conn.kind == "pool":
            exps = [0]  # a pool has no weights and no exponent
        elif plan.conn.kind == "conv" and 1 <= plan.theta / (ws * unit) <= loihi.VTH_MAX:
            exps = [0] + [e for e in exps if e != 0]  # Lava's Conv runs only weight_exp = 0; ties keep it
        if netx:
            exps = list(NETX_VTH_CAPS) if calib_in is not None else [NETX_VTH_CAPS[0]]
        for exp in ((WIDE_COARSER if calib_in is not None else [_wide_headroom(plan, unit, clip, graded)])
                    if wide else exps):
            try:
                ql = _wide_candidate(plan, unit, clip, exp, threshold) if wide else \
                    _netx_candidate(plan, unit, clip, exp, threshold) if netx else \
                    _candidate(plan, unit, clip, exp, threshold)
            except ValueError:
                continue
            errs = _errors(plan, ql)
            if calib_in is not None:
                spikes = run_layer(plan, ql, calib_in, graded)
                score = float(np.mean(spikes != calib_target))
                errs["spike_mismatch_rate"] = score
            else:
                score = errs["weight_rel_error"]
            if best is None or score < best[0] - 1e-12:
                ql.report = {"clip": clip, "weight_exp": 0 if wide or netx else exp, "weight_bits": 16 if wide else 8,
                             **({"state_coarser": exp} if wide else {}), **errs}
                best = (score, ql)
    if best is None:
        raise SpikeportError(f"layer '{plan.name}': no weight scale expresses threshold {plan.theta:g} on Loihi")
    return best[1]
