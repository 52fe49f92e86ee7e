"""A population's bias line in the spikeport NIR format: an always-on input whose int8 weights make a
constant current into u on every step (:mod:`spikeport.core.net`). It is written on the population's
weighted node (Affine / Conv2d): the node's float bias is that current, ``weight * 2**weight_exp *
state_scale`` (one value per output neuron, or per output channel of a conv), and the integers are in
its ``metadata["loihi"]`` (``line_weight``, ``line_weight_exp``, ``line_scale``). A node without a line
must have a zero bias: nothing is dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeport.core import loihi
from spikeport.core.net import Connection
from spikeport.nirfmt import guard as nir_guard
from spikeport.nirfmt import spec


@dataclass(frozen=True)
class BiasLine:
    """int8 ``weight`` (one per output neuron, or per output channel of a conv), ``weight_exp`` >= 0 (the
    line's summed input is ``weight << weight_exp``, a constant current into u every step) and
    ``state_scale`` (the float current of one summed-input unit)."""

    weight: np.ndarray
    weight_exp: int
    state_scale: float
    wide: bool = False  # 16-bit weights at weight_exp 0, two synapses each (core.net)

    def float_bias(self) -> np.ndarray:
        return np.asarray(self.weight, np.float64) * 2.0 ** self.weight_exp * self.state_scale

    def meta(self) -> dict:
        out = {spec.LINE_WEIGHT: np.asarray(self.weight).astype(np.int16 if self.wide else np.int8),
               spec.LINE_EXP: int(self.weight_exp), spec.LINE_SCALE: float(self.state_scale)}
        if self.wide:
            out[spec.LINE_BITS] = spec.WIDE_BITS
        return out

    def connection(self, name: str, repeat: int = 1) -> Connection:
        """The deploy-side line (dense [out * repeat, 1]; ``repeat``: neurons per conv channel)."""
        full = np.repeat(np.asarray(self.weight, np.int64), repeat)
        return Connection(name=name, weight=full.astype(np.int16 if self.wide else np.int8).reshape(-1, 1),
                          weight_exp=int(self.weight_exp), wide=self.wide)


def float_bias(node) -> np.ndarray:
    """A node's float bias (0.0 where it has none)."""
    bias = getattr(node, "bias", None)
    return np.asarray(0.0 if bias is None else bias, np.float64)


def read_line(node, lo: dict, conn: Connection, err, where: str) -> Connection | None:
    """The deploy-side bias line (dense [out, 1]) of the weighted node ``node`` with Loihi metadata ``lo``
    feeding ``conn``'s population, checked against the node's float bias; ``err(why)`` makes the error."""
    fb = float_bias(node)
    if spec.LINE_WEIGHT not in lo:
        if np.any(fb != 0):
            raise err("has a nonzero bias but no Loihi bias line (metadata 'line_weight'): a bias is a constant "
                      "current into the population's synapse")
        return None
    q = np.asarray(lo[spec.LINE_WEIGHT])
    per = conn.out_shape[0] if conn.kind == "conv" else conn.shape[0]
    if q.ndim != 1 or q.size != per or not np.issubdtype(q.dtype, np.integer):
        raise err(f"metadata '{spec.LINE_WEIGHT}' must be {per} integers")
    wide = nir_guard.weight_bits(lo.get(spec.LINE_BITS), err, spec.LINE_BITS) == spec.WIDE_BITS
    lo_q, hi_q = (loihi.WIDE_MIN, loihi.WIDE_MAX) if wide else (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
    if q.min() < lo_q or q.max() > hi_q:
        raise err(f"metadata '{spec.LINE_WEIGHT}' leaves Loihi's {'16' if wide else '8'} bits [{lo_q}, {hi_q}]")
    exp = np.asarray(lo.get(spec.LINE_EXP))
    exp_max = 0 if wide else spec.LINE_EXP_MAX
    if exp.size != 1 or not np.issubdtype(exp.dtype, np.integer) or not 0 <= int(exp) <= exp_max:
        raise err(f"metadata '{spec.LINE_EXP}' must be an integer in [0, {exp_max}]")
    if fb.size != per or spec.LINE_SCALE not in lo:
        raise err(f"a bias line needs {per} float bias values and metadata '{spec.LINE_SCALE}'")
    exp = int(exp.reshape(()))
    nir_guard.check_dequantized(fb.reshape(-1), q.astype(np.int64) << exp, {"weight_scale": lo[spec.LINE_SCALE]},
                                f"{where} (bias line)")
    repeat = conn.shape[0] // per if conn.kind == "conv" else 1
    return BiasLine(q, exp, 1.0, wide).connection(f"{conn.name}.line", repeat)
