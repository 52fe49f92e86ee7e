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

    def float_bias(self) -> np.ndarray:
        return np.asarray(self.weight, np.float64) * 2.0 ** self.weight_exp * self.state_scale

    def meta(self) -> dict:
        return {spec.LINE_WEIGHT: np.asarray(self.weight).astype(np.int8), spec.LINE_EXP: int(self.weight_exp),
                spec.LINE_SCALE: float(self.state_scale)}


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
    if q.min() < loihi.WEIGHT_MIN or q.max() > loihi.WEIGHT_MAX:
        raise err(f"metadata '{spec.LINE_WEIGHT}' leaves Loihi's 8 bits")
    exp = np.asarray(lo.get(spec.LINE_EXP))
    if exp.size != 1 or not np.issubdtype(exp.dtype, np.integer) or not 0 <= int(exp) <= spec.LINE_EXP_MAX:
        raise err(f"metadata '{spec.LINE_EXP}' must be an integer in [0, {spec.LINE_EXP_MAX}]")
    if fb.size != per or spec.LINE_SCALE not in lo:
        raise err(f"a bias line needs {per} float bias values and metadata '{spec.LINE_SCALE}'")
    exp = int(exp.reshape(()))
    nir_guard.check_dequantized(fb.reshape(-1), q.astype(np.int64) << exp, {"weight_scale": lo[spec.LINE_SCALE]},
                                f"{where} (bias line)")
    full = np.repeat(q, conn.shape[0] // per) if conn.kind == "conv" else q
    return Connection(name=f"{conn.name}.line", weight=full.astype(np.int8).reshape(-1, 1), weight_exp=exp)
