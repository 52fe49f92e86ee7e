"""Float <-> Loihi integers for trained sigma-delta layers (netx SDNN blocks), in one place.

A float sigma-delta network (``spikeport.train.sigma_delta``) computes, per layer l and step t,
``z = w * r_{l-1} + b``, ``a = relu(z)`` and sends changes of ``a`` of at least ``theta``; ``r_l`` is what
the next layer has received so far. On Loihi (:mod:`spikeport.core.sigma_delta`) every quantity is an
integer in a unit of its own:

* ``unit`` u_l: the float value of one integer of population l's payload (a sum of payloads is r_l / u_l).
  The input (a ``delta`` population fed frames of pixels 0..levels) has u_0 = 1 / (levels << spike_exp)
  (``TRAINED_SPIKE_EXP``).
* ``in_unit``: the float value of one integer of a connection's input: u_{l-1}, divided by pool**2 when an
  average pool comes first (Loihi sums the window; the float model averages it).
* ``weight_scale`` s_l: float per weight integer, q = round(w / s_l) in [-127, 127].
* ``sigma_unit`` = s_l * in_unit: float per integer of sigma (the summed synaptic input) and of the
  activation; the payload drops ``state_exp`` bits, so u_l = sigma_unit << state_exp.
* bias and threshold: Lava adds ``bias << (spike_exp + state_exp)`` and compares with
  ``vth << (spike_exp + state_exp)``, so both have the step ``sigma_unit << (spike_exp + state_exp)``.

The one free choice per layer is s_l. It is at least max|w| / 127 (the weights fit 8 bits) and at least
what keeps the layer's largest calibrated sum ``z_max`` (float, times ``MARGIN``) inside the range Loihi
holds it in (:func:`sum_limit`): 2**23 for a conv (Lava's Conv wraps its output to 24 bits), ``SUM_LIMIT``
for a dense sum, and a payload (``act >> state_exp``; a sigma output's sum itself) inside a signed
``message_bits`` message (``TRAINED_MESSAGE_BITS``: Lava carries graded messages of up to 24 bits).

Through the chain u_l = 64 s_l u_{l-1} a layer's choice moves the next one's: a finer unit here means larger
payloads, so the next layer's sums reach its range sooner and its weights get coarser. Each layer drops only
``state_exp`` (6) bits while its weights and fan-in add more, so the product of all weight steps is fixed by
the last layer's range (the log of the scales telescopes) and only its split between layers is a choice.
:func:`choose_scales` splits it evenly: every layer gets the same number of weight bits where the ranges
allow (the largest such number), instead of the first layers taking 8 and the later ones what is left.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeport.core import loihi
from spikeport.core.sigma_delta import STATE_EXP, VTH_MAX

# spike_exp of trained networks (netx's Network(spike_exp=...), one per network; netx's default is 6): the input
# population sends frame changes << spike_exp, and a bias / threshold sits spike_exp + state_exp bits above the
# activation. 0 keeps input payloads at the frame's 8 bits: 6 more bits for the weights of the layers (module
# docstring) and 64x finer biases and thresholds, at no cost.
TRAINED_SPIKE_EXP = 0
SHIFT = TRAINED_SPIKE_EXP + STATE_EXP  # where a bias and a threshold sit above the activation
CONV_LIMIT = 1 << (loihi.CONV_OUT_BITS - 1)  # 2**23: one step's conv sum before Lava's Conv wraps it
SUM_LIMIT = 1 << 29  # a dense sum / activation, with room in Lava's int32 state
MARGIN = 2.0  # calibrated maxima are kept this far inside those limits
TRAINED_MESSAGE_BITS = 24  # payload width trained networks keep to (Lava's graded messages: up to 24 bits)
BIAS_LIMIT = (1 << (31 - SHIFT)) - 1  # bias << SHIFT must fit Lava's int32 state
VTH_LIMIT = min((1 << (31 - SHIFT)) - 1, VTH_MAX)  # vth << SHIFT likewise; Lava keeps 24 bits of vth


def input_unit(levels: int) -> float:
    """u_0: the float value (a pixel in [0, 1] is ``value / levels``) of one payload integer of the input
    ``delta`` population, which sends frame changes shifted left by ``TRAINED_SPIKE_EXP``."""
    return 1.0 / (int(levels) << TRAINED_SPIKE_EXP)


def input_vth(threshold: float, levels: int) -> int:
    """The input population's vth for a threshold given as a fraction of full scale (pixel units)."""
    return int(round(float(threshold) * int(levels)))


@dataclass(frozen=True)
class SDLayerQuant:
    """The integer form of one trained sigma-delta layer (see the module docstring for the units).

    ``weight``: int8, dense [out, in] or conv [C_out, C_in, kh, kw]; ``bias``: int64 per output channel
    (conv) or neuron (dense), zeros for a ``sigma`` output; ``vth``: Lava's threshold mantissa."""

    weight: np.ndarray
    weight_scale: float
    in_unit: float
    bias: np.ndarray
    vth: int
    sigma: bool = False  # a Sigma output (its payload is its summed input: the logits)

    @property
    def sigma_unit(self) -> float:
        return self.weight_scale * self.in_unit

    @property
    def unit(self) -> float:
        """Float value of one payload integer (a Sigma output sends sigma itself)."""
        return self.sigma_unit * (1 if self.sigma else 1 << STATE_EXP)

    @property
    def step(self) -> float:
        """Float value of one bias or threshold integer."""
        return self.sigma_unit * (1 << SHIFT)

    def float_bias(self) -> np.ndarray:
        return self.bias.astype(np.float64) * self.step

    def float_threshold(self) -> float:
        return self.vth * self.step


def sum_limit(conv: bool, sigma: bool, message_bits: int = TRAINED_MESSAGE_BITS) -> int:
    """The largest |sum| (integers of sigma) a layer may reach: what Lava's Conv holds (2**23) or int32 with
    room (``SUM_LIMIT``), and what keeps its payload inside a signed ``message_bits`` message (a sigma
    output sends sigma itself; a hidden layer ``act >> STATE_EXP``)."""
    message = 1 << (message_bits - 1 + (0 if sigma else STATE_EXP))
    return min(CONV_LIMIT if conv else SUM_LIMIT, message)


def weight_scale(w_max: float, z_max: float, in_unit: float, limit: int) -> float:
    """s_l: max|w| / 127, or coarser where ``z_max`` (the calibrated largest |sum|, float) times MARGIN
    would pass ``limit`` integers (:func:`sum_limit`)."""
    need = float(z_max) * MARGIN / (limit * in_unit)
    s = max(float(w_max) / loihi.WEIGHT_MAX, need)
    return s if s > 0 and math.isfinite(s) else 1.0 / loihi.WEIGHT_MAX


def quantize_layer(weight: np.ndarray, bias: np.ndarray | None, *, threshold: float, in_unit: float,
                   z_max: float, conv: bool, sigma: bool = False, message_bits: int = TRAINED_MESSAGE_BITS,
                   scale: float | None = None) -> SDLayerQuant:
    """One layer's integers for float ``weight``, ``bias`` (per channel / neuron, or None) and delta
    ``threshold`` (float activation units), fed by inputs whose integers are worth ``in_unit``; ``scale``:
    the weight scale (:func:`choose_scales`), else the finest :func:`weight_scale` allows."""
    w = np.asarray(weight, np.float64)
    ws = scale or weight_scale(np.abs(w).max(initial=0.0), z_max, in_unit, sum_limit(conv, sigma, message_bits))
    q = np.clip(np.rint(w / ws), loihi.WEIGHT_MIN, loihi.WEIGHT_MAX).astype(np.int8)
    step = ws * in_unit * (1 << SHIFT)
    n = w.shape[0]
    b = np.zeros(n) if bias is None or sigma else np.asarray(bias, np.float64)
    bq = np.clip(np.rint(b / step), -BIAS_LIMIT, BIAS_LIMIT).astype(np.int64)
    vth = 0 if sigma else int(np.clip(round(float(threshold) / step), 0, VTH_LIMIT))
    return SDLayerQuant(q, ws, float(in_unit), bq, vth, sigma)


def _chain(bits: float, w_max, floors, pools, u0: float) -> list[float]:
    """Scales giving every layer ``bits`` weight bits (2**bits levels for max|w|), or coarser where a range
    floor on its sigma unit (``floors``) says so."""
    scales, unit = [], u0
    for wm, floor, k in zip(w_max, floors, pools):
        in_unit = unit / k**2
        s = max(wm / 2.0**bits, floor / in_unit, 1e-30)
        scales.append(s)
        unit = s * in_unit * (1 << STATE_EXP)
    return scales


def choose_scales(w_max: list[float], z_max: list[float], pools: list[int], convs: list[bool],
                  sigmas: list[bool], u0: float, message_bits: int = TRAINED_MESSAGE_BITS) -> list[float]:
    """Weight scales of a chain of layers (module docstring): the largest common number of weight bits
    (at most log2(127)) whose worst layer, after the range floors, keeps the most bits."""
    floors = [z * MARGIN / sum_limit(c, sg, message_bits) for z, c, sg in zip(z_max, convs, sigmas)]
    w_max = [w if w > 0 else 1.0 for w in w_max]
    best, best_bits = None, -math.inf
    for b in np.arange(math.log2(loihi.WEIGHT_MAX), 0.0, -0.125):
        scales = _chain(float(b), w_max, floors, pools, u0)
        worst = min(math.log2(wm / s) for wm, s in zip(w_max, scales))
        if worst > best_bits + 1e-9:
            best, best_bits = scales, worst
    return best
