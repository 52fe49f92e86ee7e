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
    bits = 8 if graded else 0  # graded spikes carry integer payloads (direct-encoded inputs)
    kind = conn.lava_process
    if kind == "conv":
        from lava.proc.conv.process import Conv

        if window is not None:
            raise ValueError(f"{conn.name}: a recurrent convolution is not supported on Lava")
        args = conn.lava_conv()
        return Conv(weight=args["weight"], input_shape=args["input_shape"], stride=args["stride"],
                    padding=args["padding"], dilation=args["dilation"], groups=args["groups"],
                    num_message_bits=bits, name=conn.name)
    # int8 q is passed as 2*q with one more right shift: exact under Lava's weight truncation (core.loihi)
    factor, exp = (1, int(conn.weight_exp)) if unsigned else \
        (loihi.DENSE_WEIGHT_FACTOR, int(conn.weight_exp + loihi.DENSE_WEIGHT_EXP))
    if kind == "dense":
        w = np.asarray(conn.weight) if conn.pool is None else conn.to_matrix().toarray()
        w2 = w.astype(np.int32) * factor
    else:
        w2 = sparse.csr_matrix(conn.to_matrix() * factor, dtype=np.int32)
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


def _lif_process(pop, idx: int, T: int, record_path: str, record_steps: int):
    from spikeport.deploy.lava_procs.process import LoihiLIF

    return LoihiLIF(shape=(pop.size,), du=int(pop.lif.du), dv=int(pop.lif.dv), vth=int(pop.lif.vth),
                    bias_mant=np.asarray(pop.lif.bias_mant, dtype=np.int32) * np.ones(pop.size, np.int32),
                    bias_exp=int(pop.lif.bias_exp), reset_interval=int(T), reset_offset=window_offset(idx, T),
                    floor_v=bool(pop.lif.floor_v), record_path=record_path, record_steps=int(record_steps),
                    name=pop.name)


def build_network(net: LoihiNet, x: np.ndarray, record_dir: str = "", record: str = "all"):
    """Lava processes for streaming x [T, B, ...] through ``net``; nothing runs yet.

    Returns (source, lifs, recorded, steps): the FrameSource, one LoihiLIF per population,
    [(population index, size, file)] of the populations that record their spikes into ``record_dir``
    (all for ``record="all"``, the last for ``"output"``, none without a folder) and the number of
    Lava steps to run."""
    from spikeport.deploy.lava_procs.process import FrameSource

    T, B = x.shape[:2]
    n_layers = len(net.populations)
    steps = B * T + n_layers + 1
    frames = x.reshape(T, B, -1).transpose(1, 0, 2).reshape(B * T, -1)  # sample-major stream
    source = FrameSource(frames=np.ascontiguousarray(frames, dtype=np.int32))
    prev_out, recorded, lifs = source.s_out, [], []
    for idx, pop in enumerate(net.populations):
        path = f"{record_dir}/p{idx}.npy" if record_dir and (record == "all" or idx == n_layers - 1) else ""
        lif = _lif_process(pop, idx, T, path, steps)
        for conn in _connection_processes(pop.input, graded=(idx == 0 and net.graded_input)):
            _into(prev_out, pop.input).connect(conn.s_in)
            _out_of(conn.a_out, pop.input).connect(lif.a_in)
        if pop.recurrent is not None:
            for rec in _connection_processes(pop.recurrent, graded=False, window=(int(T), window_offset(idx, T))):
                lif.s_out.connect(rec.s_in)
                rec.a_out.connect(lif.a_in)
        if pop.bias_line is not None:  # a source that spikes on every step: present in every window
            always = FrameSource(frames=np.ones((steps, 1), np.int32))
            for line in _connection_processes(pop.bias_line, graded=False):
                always.s_out.connect(line.s_in)
                line.a_out.connect(lif.a_in)
        if path:
            recorded.append((idx, pop.size, path))
        lifs.append(lif)
        prev_out = lif.s_out
    return source, lifs, recorded, steps


def align(data: np.ndarray, idx: int, T: int, B: int) -> np.ndarray:
    """Rows of Lava steps 1..steps of population ``idx`` ([steps, N]) -> its sample windows [T, B, N]."""
    start = idx + 1  # row of Lava step (idx + 2): the first step of sample 0's window
    return np.asarray(data)[start: start + B * T].reshape(B, T, -1).transpose(1, 0, 2)


def run_network(net: LoihiNet, x: np.ndarray, record: str = "all") -> list[np.ndarray]:
    """Run samples x [T, B, ...] integers on Lava. Returns spikes per recorded population as
    [T, B, N] bool (N flat, C-major; all populations for ``record="all"``, only the last for
    ``"output"``)."""
    import tempfile

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    T, B = x.shape[:2]
    with tempfile.TemporaryDirectory(prefix="spikeport-lava-rec-") as tmp:
        source, _, recorded, steps = build_network(net, x, tmp, record)
        try:
            source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            raw = [(idx, np.unpackbits(np.load(path), axis=1, count=n).astype(bool)) for idx, n, path in recorded]
        finally:
            source.stop()
    return [align(data, idx, T, B) for idx, data in raw]
