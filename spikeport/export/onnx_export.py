"""A deployed network (``model.nir`` read as a LoihiNet) -> ``model.onnx`` computing Loihi's integer
arithmetic exactly, for runtimes that do not know Lava.

Form: **time unrolled**. One graph input ``x`` int64 ``[T, B, input_size]`` (T fixed, B dynamic; the
integer inputs spikeport feeds Lava: 0/1 spikes or graded values, a sample flattened C-major) and one
output per population ``spikes_<l>`` bool ``[T, B, N_l]``; a network whose last population never spikes (an
integrator read by its voltage: a membrane readout) has one more, ``values`` int64 ``[T, B, N]``, its voltage
at every step (the class: argmax of the last step's). There is no state to carry: a sample is all
T steps, starting from u = v = 0, exactly as ``model.forward_int`` and the emulator run it.

Arithmetic, per population, in int64 ONNX operators (values are integers throughout):

* feed-forward input of all T steps at once: ``acc = x @ M^T`` as a float64 ``MatMul`` (exact: every
  product and partial sum is an integer below 2**53, checked at export), cast to int64; ``M`` is the
  connection's whole integer map (dense weights, or a conv / sum pool unrolled to its matrix);
* ``a = shift(acc, weight_exp)``: a left shift is a multiplication; a right shift floors,
  ``(acc - (acc mod 2**k)) / 2**k`` (``Mod`` with the divisor's sign); a Lava ``Conv`` instead wraps
  to 24 bits (``runs_as_lava_conv``);
* per step: ``u = wrap24(wrap32(tz(u * (4096 - du - 1)) + wrap32(a << 6)))``,
  ``v = clip(wrap32(tz(v * (4096 - dv)) + u + bias), +-(2**23 - 1))`` (floor at 0 for KLIF),
  ``s = v > vth << 6``, ``v = 0 where s``; ``tz(p) = sign(p) * (|p| div 4096)`` rounds toward zero
  (the sign by ``Where``: onnxruntime's int64 ``Sign`` is wrong beyond 2**31);
  a recurrent connection adds ``shift(W_rec s[t-1], exp_rec)`` to ``a``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.core import loihi
from spikeport.core.net import Connection, LoihiNet
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

OPSET = 17
VALUES = "values"  # the output of a value network: the last population's voltage per step
EXACT = 2**53
MAX_MATRIX = 1 << 26  # entries of an unrolled connection matrix written into the model


class _Builder:
    """Appends ONNX nodes with unique names; constants are int64 / float64 initializers."""

    def __init__(self):
        from onnx import helper

        self.h, self.nodes, self.inits, self.n = helper, [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, dtype=np.int64, base: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, *inputs: str, base: str | None = None, **attrs) -> str:
        out = self.name(base or kind.lower())
        self.nodes.append(self.h.make_node(kind, list(inputs), [out], name=out, **attrs))
        return out

    # integer helpers ----------------------------------------------------------------------------
    def wrap(self, x: str, bits: int) -> str:
        half, span = self.const(1 << (bits - 1)), self.const(1 << bits)
        return self.op("Sub", self.op("Mod", self.op("Add", x, half), span, fmod=0), half)

    def floor_shift(self, x: str, k: int) -> str:
        """floor(x / 2**k) for int64 x (exact: the division after subtracting the remainder is exact)."""
        d = self.const(1 << k)
        return self.op("Div", self.op("Sub", x, self.op("Mod", x, d, fmod=0)), d)

    def shift_exp(self, x: str, exp: int) -> str:
        if exp == 0:
            return x
        return self.op("Mul", x, self.const(1 << exp)) if exp > 0 else self.floor_shift(x, -exp)

    def decay(self, x: str, factor: int) -> str:
        if factor == loihi.DECAY_UNITY:
            return x
        if factor == 0:
            return self.op("Mul", x, self.const(0))
        p = self.op("Mul", x, self.const(factor))
        mag = self.op("Div", self.op("Abs", p), self.const(loihi.DECAY_UNITY))  # non-negative: trunc = floor
        # sign(p) * mag without Sign: onnxruntime's int64 Sign is wrong beyond 2**31 (measured, 1.23)
        return self.op("Where", self.op("Less", p, self.const(0)), self.op("Neg", mag), mag)


def _matrix(conn: Connection) -> np.ndarray:
    """The connection's integer map as a dense [out, in] float64 array (exact integers)."""
    out, n_in = conn.shape
    if out * n_in > MAX_MATRIX:
        raise SpikeportError(f"connection '{conn.name}': a {out}x{n_in} matrix is too large for the ONNX export")
    if conn.kind == "dense" and conn.pool is None:
        return np.asarray(conn.weight, np.float64)
    return np.asarray(conn.to_matrix().toarray(), np.float64)


def _synaptic(b: _Builder, x_double: str, conn: Connection, x_peak: int) -> str:
    """int64 summed input of ``conn`` for a float64 input tensor [..., in] holding integers."""
    m = _matrix(conn)
    if x_peak * float(np.abs(m).sum(axis=1).max(initial=0)) >= EXACT:
        raise SpikeportError(f"connection '{conn.name}': integer sums may reach 2**53; float64 would not be exact")
    acc = b.op("Cast", b.op("MatMul", x_double, b.const(m.T.copy(), np.float64, "w")), to=7)  # 7 = INT64
    if conn.lava_process == "conv":
        return b.wrap(acc, loihi.CONV_OUT_BITS)
    return b.shift_exp(acc, int(conn.weight_exp))


def _population(b: _Builder, pop, ff: str, T: int) -> tuple[list[str], list[str]]:
    """Unrolled neuron steps of one population; ``ff`` int64 [T, B, N]. Returns T bool [1, B, N] spike
    tensors and T int64 [1, B, N] voltages (after the reset)."""
    lif = pop.lif
    bias = b.const(np.broadcast_to(lif.effective_bias(), (pop.size,)).copy(), base="bias")
    thr, zero = b.const(lif.threshold), b.const(0)
    lo, hi = b.const(0 if lif.floor_v else -loihi.V_LIMIT), b.const(loihi.V_LIMIT)
    du_f = loihi.DECAY_UNITY - (int(lif.du) + loihi.DU_OFFSET)
    dv_f = loihi.DECAY_UNITY - (int(lif.dv) + loihi.DV_OFFSET)
    act = b.const(1 << loihi.ACT_SHIFT)
    state_max, span = b.const(loihi.STATE_MAX), b.const(2 * loihi.STATE_MAX)
    neg_max = b.const(-loihi.STATE_MAX)
    u = v = s_prev = None
    outs, volts = [], []
    for t in range(T):
        a = b.op("Squeeze", b.op("Slice", ff, b.const([t]), b.const([t + 1]), b.const([0])), b.const([0]))
        if pop.bias_line is not None:  # the always-on input line: a constant summed input
            a = b.op("Add", a, b.const(pop.line_current(), base="line"))
        if pop.recurrent is not None and s_prev is not None:
            s_d = b.op("Cast", s_prev, to=11)  # 11 = DOUBLE
            a = b.op("Add", a, _synaptic(b, s_d, pop.recurrent, 1))
        a6 = b.wrap(b.op("Mul", a, act), 32)
        u_new = b.wrap(a6 if u is None else b.op("Add", b.decay(u, du_f), a6), 32)
        # wrap24: x > 2**23 -> x - 2**24; x <= -2**23 -> x + 2**24
        over = b.op("Cast", b.op("Greater", u_new, state_max), to=7)
        under = b.op("Cast", b.op("LessOrEqual", u_new, neg_max), to=7)
        u = b.op("Add", b.op("Sub", u_new, b.op("Mul", over, span)), b.op("Mul", under, span))
        v_in = b.op("Add", u, bias) if v is None else b.op("Add", b.op("Add", b.decay(v, dv_f), u), bias)
        v_new = b.op("Min", b.op("Max", b.wrap(v_in, 32), lo), hi)
        s = b.op("Greater", v_new, thr)
        v = b.op("Where", s, zero, v_new)
        s_prev = s
        outs.append(b.op("Unsqueeze", s, b.const([0])))
        volts.append(b.op("Unsqueeze", v, b.const([0])))
    return outs, volts


def build_model(net: LoihiNet, peak_input: int = 255):
    """The ONNX ModelProto of ``net`` (see module docstring); ``peak_input`` bounds |x| for the exactness check."""
    from onnx import TensorProto, checker, helper

    T, b = int(net.time_steps), _Builder()
    x_in = helper.make_tensor_value_info("x", TensorProto.INT64, [T, "batch", net.input_size])
    layer_in, peak, outputs = "x", (peak_input if net.graded_input else 1), []
    for i, pop in enumerate(net.populations):
        ff = _synaptic(b, b.op("Cast", layer_in, to=11), pop.input, peak)
        steps, volts = _population(b, pop, ff, T)
        name = f"spikes_{i}"
        b.nodes.append(helper.make_node("Concat", steps, [name], name=name, axis=0))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.BOOL, [T, "batch", pop.size]))
        layer_in, peak = b.op("Cast", name, to=7), 1
    if net.regression:  # a value output (an integrator read by its voltage): v of every step
        b.nodes.append(helper.make_node("Concat", volts, [VALUES], name=VALUES, axis=0))
        outputs.append(helper.make_tensor_value_info(VALUES, TensorProto.INT64, [T, "batch", net.n_outputs]))
    graph = helper.make_graph(b.nodes, "spikeport_loihi", [x_in], outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="spikeport", doc_string=__doc__.split("\n\n")[0])
    model.ir_version = min(model.ir_version, 9)  # readable by onnxruntime >= 1.17
    checker.check_model(model)
    return model


def export_onnx(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir/model.onnx`` (or ``out``) from ``run_dir/model.nir``; returns the path."""
    from spikeport.data import INPUT_LEVELS
    from spikeport.nirfmt.load import load_nir

    run_dir = Path(run_dir)
    nir_path = run_dir / runfolder.MODEL_NIR
    if not nir_path.is_file():
        raise SpikeportError(f"{nir_path}: file not found (run `spikeport export {run_dir}` first)")
    net = load_nir(nir_path)
    model = build_model(net, INPUT_LEVELS)
    path = Path(out) if out else run_dir / runfolder.MODEL_ONNX
    fileio.write_bytes(path, model.SerializeToString())
    return path
