"""Run a :class:`LoihiNet` on Lava's bit-accurate Loihi model (``Loihi2SimCfg(select_tag="fixed_pt")``).

Streaming recipe (compile once, run once): all N samples are laid back to back in one source,
the network runs ``N*T + L + 1`` steps, and every population is a ``LIF`` with reset
(``LIFReset``) whose reset phase is aligned with the step at which its sample window begins.

Populations are spikeport's ``LoihiLIF`` (``lava_procs``): Lava's ``LIFReset`` fixed_pt model plus the
KLIF v floor, recording its own spikes to a file (reading a Lava sink with ``Var.get`` costs one message
per value). Connections are Dense, Sparse or Conv (``Connection.lava_process``); a Conv sees its
input through virtual ports that turn spikeport's flat C-major order into Lava's (W, H, C).

Alignment. The source (``FrameSource``) sends frame k at Lava step k+1 (Lava counts steps from 1); every
connection delays by one step. So population l (0-based) receives frame k of sample n at step
``n*T + k + l + 2``: its window starts at steps congruent to ``(l + 2) mod T``, which is its reset
offset. Its recorded spikes are read back from the same windows. A population's bias line is a Dense
fed by its own ``FrameSource`` of ones on every step, so it reaches every step of every window.

Loihi 2 blocks (:attr:`LoihiNet.isolated_samples`: sigma-delta populations, delays, an input encoder)
run per sample instead, as :mod:`spikeport.deploy.netx_backend` runs netx's: each sample alone for
``lag(L-1) + T`` steps from a zeroed network (every neuron state and synapse buffer set to zero in a pause
before it; a bias encoder's ``bias_mant`` set to the sample's frame). Sigma-delta populations are Lava's
own ``lava.proc.sdn`` processes, delays Lava's ``DelayDense``; graded outputs and a regression output's
voltage are recorded by :mod:`spikeport.deploy.netx_procs`.

This module imports Lava; call it through :func:`spikeport.deploy.supervise.run_lava` so that Lava
lives in a supervised child process.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from spikeport.core import loihi
from spikeport.core.net import Connection, LoihiNet


def window_offset(layer_index: int, time_steps: int) -> int:
    """Reset offset (Lava step modulo T) at which population ``layer_index``'s sample window starts."""
    return (layer_index + 2) % time_steps


def _connection_processes(conn: Connection, graded: bool, window: tuple[int, int] | None = None) -> list:
    """(module docstring)"""
    if conn.delay is not None:
        return [_delayed_process(conn, graded)]
    return _plain_processes(conn, graded, window)


def _delayed_process(conn: Connection, graded: bool):
    """Lava's DelayDense computing a delayed dense map: each synapse's spikes arrive ``delay`` steps later."""
    from lava.proc.dense.process import DelayDense

    from spikeport.core.net import MAX_DELAY

    w, exp = _dense_encoding(conn)
    return DelayDense(weights=w, delays=np.asarray(conn.delay).astype(int), max_delay=MAX_DELAY, weight_exp=exp,
                      num_message_bits=16 if graded else 0, name=conn.name)


def _dense_encoding(conn: Connection) -> tuple[np.ndarray, int]:
    """(weights as Lava's Dense takes them, weight_exp): an int8 q as 2*q with one more right shift (exact
    under Lava's truncation, core.loihi); native weights unchanged."""
    w = np.asarray(conn.weight) if conn.pool is None else conn.to_matrix().toarray()
    if conn.native:
        return w.astype(np.int32), int(conn.weight_exp)
    return w.astype(np.int32) * loihi.DENSE_WEIGHT_FACTOR, int(conn.weight_exp + loihi.DENSE_WEIGHT_EXP)


def _plain_processes(conn: Connection, graded: bool, window: tuple[int, int] | None = None) -> list:
    """The Lava processes whose summed outputs are ``conn``'s summed input: one, or two for a wide
    connection (high byte at exponent 8, unsigned low byte at 0, from the same input; ``core.loihi``)."""
    if not conn.wide:
        return [_connection_process(conn, graded, window)]
    conn.check_loihi()  # the whole map, a sum pool folded in, within 16 bits
    hi, lo = loihi.split_wide(conn.weight if conn.pool is None else conn.to_matrix().toarray())
    parts = ((hi, loihi.WIDE_HI_EXP, False, "hi"), (lo, 0, True, "lo"))
    return [_connection_process(dataclasses.replace(conn, name=f"{conn.name}.{tag}", weight=w, weight_exp=e,
                                                    wide=False, pool=None, in_shape=()), graded, window, unsigned=u)
            for w, e, u, tag in parts]


def _connection_process(conn: Connection, graded: bool, window: tuple[int, int] | None = None,
                        unsigned: bool = False):
    """The Lava process that computes ``conn`` exactly (``conn.lava_process``): Dense, Sparse (pruned
    layers, or a conv Lava's Conv cannot express) or Conv. ``window`` (interval, offset) makes a
    recurrent connection that forgets its buffered spikes when a sample window begins. ``unsigned``: the
    low byte of a wide connection (0..255, passed as it is: Lava keeps a non-negative matrix to 8 bits)."""
    from scipy import sparse

    if unsigned:
        if conn.weight.size and (conn.weight.min() < 0 or conn.weight.max() > (1 << loihi.WEIGHT_BITS) - 1):
            raise ValueError(f"{conn.name}: a low byte must lie in [0, 255]")
    elif conn.lava_process != "conv":  # Dense / Sparse would clip wider weights silently (Conv does not)
        conn.check_loihi()
    bits = 16 if graded else 0  # graded spikes carry integer payloads (direct-encoded inputs, sigma-delta)
    kind = conn.lava_process
    if kind == "conv":
        from lava.proc.conv.process import Conv

        if window is not None:
            raise ValueError(f"{conn.name}: a recurrent convolution is not supported on Lava")
        args = conn.lava_conv()
        return Conv(weight=args["weight"], input_shape=args["input_shape"], stride=args["stride"],
                    padding=args["padding"], dilation=args["dilation"], groups=args["groups"],
                    num_message_bits=bits, name=conn.name)
    if unsigned:
        w2, exp = np.asarray(conn.weight).astype(np.int32), int(conn.weight_exp)
    elif conn.kind == "dense":
        w2, exp = _dense_encoding(conn)
    else:  # a conv Lava's Conv cannot express, unrolled (2*q, one more right shift, as for dense)
        w2 = conn.to_matrix() * loihi.DENSE_WEIGHT_FACTOR
        exp = int(conn.weight_exp + loihi.DENSE_WEIGHT_EXP)
    if kind != "dense":
        w2 = sparse.csr_matrix(w2, dtype=np.int32)
    if window is not None:
        from spikeport.deploy.lava_procs.process import WindowedDense, WindowedSparse

        cls = WindowedDense if kind == "dense" else WindowedSparse
        return cls(weights=w2, weight_exp=exp, num_message_bits=bits, name=conn.name,
                   reset_interval=window[0], reset_offset=window[1])
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    return (Dense if kind == "dense" else Sparse)(weights=w2, weight_exp=exp, num_message_bits=bits, name=conn.name)


def _into(port, conn: Connection):
    """Adapt a flat C-major port to the connection's input: Lava's Conv reads (W, H, C)."""
    if conn.lava_process == "conv":
        return port.reshape(conn.in_shape).transpose((2, 1, 0))
    return port


def _out_of(port, conn: Connection):
    """Adapt the connection's output to a flat C-major population: Lava's Conv writes (W, H, C)."""
    if conn.lava_process == "conv":
        return port.transpose((2, 1, 0)).reshape((conn.shape[0],))
    return port


def _lif_process(pop, idx: int, T: int, record_path: str, record_steps: int, per_sample: bool = False):
    """spikeport's LoihiLIF: streaming, it resets when its sample window begins (interval T); per sample
    (T = the segment length) when each segment begins, besides the pause's zeroing."""
    from spikeport.deploy.lava_procs.process import LoihiLIF

    return LoihiLIF(shape=(pop.size,), du=int(pop.lif.du), dv=int(pop.lif.dv), vth=int(pop.lif.vth),
                    bias_mant=np.asarray(pop.lif.bias_mant, dtype=np.int32) * np.ones(pop.size, np.int32),
                    bias_exp=int(pop.lif.bias_exp), reset_interval=int(T),
                    reset_offset=1 if per_sample else window_offset(idx, T),
                    floor_v=bool(pop.lif.floor_v), record_path=record_path, record_steps=int(record_steps),
                    name=pop.name)


STATE_VARS = ("u", "v", "sigma", "act", "residue", "error", "a_buff", "a_buf")  # zeroed before each sample


def zero_state(procs: list, first: bool) -> None:
    """Set every state Var (neuron states, synapse buffers) of ``procs`` to zero; nothing before the first
    run (no runtime yet: everything starts at zero)."""
    if first:
        return
    for proc in procs:
        for name in STATE_VARS:
            var = getattr(proc, name, None)
            if var is not None and hasattr(var, "set"):
                var.set(np.zeros(var.shape, np.int32))


def set_frame(var, frame: np.ndarray, first: bool) -> None:
    """A Var's value for the next sample (its initial value before the first run)."""
    frame = np.ascontiguousarray(frame, dtype=np.int32)
    if first:
        var.init = frame
    else:
        var.set(frame)


def _sd_process(pop, path: str, steps: int):
    """Lava's own sigma-delta process for a sigma-delta population (flat shape), plus its payload recorder."""
    from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta

    from spikeport.deploy.netx_procs.process import SpikeRecorder

    sd, shape = pop.sd, (pop.size,)
    if sd.kind == "sigma":
        proc = Sigma(shape=shape)
    elif sd.kind == "delta":
        proc = Delta(shape=shape, vth=int(sd.vth), spike_exp=int(sd.spike_exp), state_exp=int(sd.state_exp))
    else:
        bias = np.broadcast_to(np.asarray(sd.bias, np.int64), shape).astype(np.int32)
        proc = SigmaDelta(shape=shape, vth=int(sd.vth), bias=bias, spike_exp=int(sd.spike_exp),
                          state_exp=int(sd.state_exp), act_mode=ActivationMode.RELU if sd.relu else ActivationMode.UNIT)
    rec = None
    if path:
        rec = SpikeRecorder(shape=shape, record_path=path, record_steps=steps, graded=True)
        proc.s_out.connect(rec.s_in)
    return proc


def _layout(net: LoihiNet, x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(frames [steps, n] for the FrameSource, steps, segment length): samples back to back (streaming), or
    one segment of ``lag(L-1) + T`` steps per sample, frames first and zeros after (per sample)."""
    T, B = x.shape[:2]
    flat = x.reshape(T, B, -1)
    if not net.isolated_samples:
        return flat.transpose(1, 0, 2).reshape(B * T, -1), B * T + len(net.populations) + 1, 0
    seg = net.lag(len(net.populations) - 1) + T
    frames = np.zeros((B, seg, flat.shape[2]), np.int32)
    frames[:, :T] = flat.transpose(1, 0, 2)
    return frames.reshape(B * seg, -1), B * seg, seg


@dataclasses.dataclass
class Built:
    """What :func:`build_network` made: the FrameSource, one neuron process per population, every process
    holding state (neurons, synapses), [(population index or -1 for the regression value, size, file,
    graded)] of what records, the number of Lava steps to run and the per-sample segment length (0:
    streaming)."""

    source: object
    neurons: list
    procs: list
    recorded: list
    steps: int
    seg: int


def build_network(net: LoihiNet, x: np.ndarray, record_dir: str = "", record: str = "all") -> Built:
    """Lava processes for running x [T, B, ...] through ``net``; nothing runs yet. Recordings go into
    ``record_dir`` (all populations for ``record="all"``, the last for ``"output"``, none without a
    folder)."""
    from spikeport.deploy.lava_procs.process import FrameSource
    from spikeport.deploy.netx_procs.process import VarRecorder

    T, B = x.shape[:2]
    n_layers = len(net.populations)
    frames, steps, seg = _layout(net, x)
    source = FrameSource(frames=np.ascontiguousarray(frames, dtype=np.int32))
    prev_out, prev_graded, recorded, procs, neurons = source.s_out, net.graded_input, [], [], []
    for idx, pop in enumerate(net.populations):
        path = f"{record_dir}/p{idx}.npy" if record_dir and (record == "all" or idx == n_layers - 1) else ""
        neuron = _sd_process(pop, path, steps) if pop.sd is not None else \
            _lif_process(pop, idx, seg or T, path, steps, per_sample=bool(seg))
        procs.append(neuron)
        neurons.append(neuron)
        if pop.encoder == "a_in":
            prev_out.connect(neuron.a_in)
        elif pop.input is not None:
            for conn in _connection_processes(pop.input, graded=prev_graded and not pop.input.binary):
                _into(prev_out, pop.input).connect(conn.s_in)
                _out_of(conn.a_out, pop.input).connect(neuron.a_in)
                procs.append(conn)
        if pop.recurrent is not None:
            window = None if seg else (int(T), window_offset(idx, T))
            for rec in _connection_processes(pop.recurrent, graded=pop.graded and not pop.recurrent.binary,
                                             window=window):
                neuron.s_out.connect(rec.s_in)
                rec.a_out.connect(neuron.a_in)
                procs.append(rec)
        if pop.bias_line is not None:  # a source that spikes on every step: present in every window
            always = FrameSource(frames=np.ones((steps, 1), np.int32))
            for line in _connection_processes(pop.bias_line, graded=False):
                always.s_out.connect(line.s_in)
                line.a_out.connect(neuron.a_in)
                procs.append(line)
        if path:
            recorded.append((idx, pop.size, path, pop.graded))
        if idx == n_layers - 1 and net.regression and pop.lif is not None and record_dir:
            reader = VarRecorder(shape=(pop.size,), record_path=f"{record_dir}/value.npy", record_steps=steps)
            reader.connect_var(neuron.v)
            recorded.append((-1, pop.size, f"{record_dir}/value.npy", True))
        prev_out, prev_graded = neuron.s_out, pop.graded
    return Built(source, neurons, procs, recorded, steps, seg)


def align(data: np.ndarray, idx: int, T: int, B: int) -> np.ndarray:
    """Rows of Lava steps 1..steps of population ``idx`` ([steps, N]) -> its sample windows [T, B, N]."""
    start = idx + 1  # row of Lava step (idx + 2): the first step of sample 0's window
    return np.asarray(data)[start: start + B * T].reshape(B, T, -1).transpose(1, 0, 2)


def segments(data: np.ndarray, lag: int, T: int, B: int, seg: int) -> np.ndarray:
    """Rows of a per-sample run ([B * seg, N]) -> a population's windows [T, B, N] (``lag`` steps into each
    segment)."""
    return np.asarray(data).reshape(B, seg, -1)[:, lag:lag + T].transpose(1, 0, 2)


def read_recording(path: str, n: int, graded: bool) -> np.ndarray:
    data = np.load(path)
    return data if graded else np.unpackbits(data, axis=1, count=n).astype(bool)


def run_network(net: LoihiNet, x: np.ndarray, record: str = "all", with_values: bool = False):
    """Run samples x [T, B, ...] integers on Lava. Returns outputs per recorded population as [T, B, N]
    (spikes bool, sigma-delta payloads int32; N flat, C-major; all populations for ``record="all"``, only
    the last for ``"output"``); with ``with_values`` (outputs, the regression output's values [T, B, N]
    int64 or None)."""
    import tempfile

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    T, B = x.shape[:2]
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    with tempfile.TemporaryDirectory(prefix="spikeport-lava-rec-") as tmp:
        built = build_network(net, x, tmp, record)
        procs, recorded, steps, seg = built.procs, built.recorded, built.steps, built.seg
        runner = procs[0] if net.encoder == "bias" else built.source  # a bias encoder takes no input port
        try:
            if not seg:
                runner.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            for n in range(B if seg else 0):
                zero_state(procs, n == 0)
                if net.encoder == "bias":
                    frame = np.asarray(x[0, n]).reshape(-1)
                    set_frame(procs[0].bias_mant, frame, n == 0)
                runner.run(condition=RunSteps(num_steps=seg), run_cfg=cfg)
            raw = [(idx, read_recording(path, n, graded)) for idx, n, path, graded in recorded]
        finally:
            runner.stop()
    last = len(net.populations) - 1
    outs = {}
    for idx, data in raw:
        pos = last if idx < 0 else idx
        outs[idx] = segments(data, net.lag(pos), T, B, seg) if seg else align(data, pos, T, B)
    spikes = [outs[i] for i in sorted(k for k in outs if k >= 0)]
    values = None
    if net.regression:
        values = (outs[-1] if -1 in outs else outs.get(last, spikes[-1])).astype(np.int64)
    return (spikes, values) if with_values else spikes
