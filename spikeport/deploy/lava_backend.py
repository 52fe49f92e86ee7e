"""Run a :class:`LoihiNet` on Lava's bit-accurate Loihi model (``Loihi2SimCfg(select_tag="fixed_pt")``).

Streaming recipe (compile once, run once): all N samples are laid back to back in one RingBuffer,
the network runs ``N*T + L + 1`` steps, and every population is a ``LIF`` with reset
(``LIFReset``) whose reset phase is aligned with the step at which its sample window begins.

Alignment. The RingBuffer sends frame k at Lava step k+1 (Lava counts steps from 1); every
connection delays by one step. So population l (0-based) receives frame k of sample n at step
``n*T + k + l + 2``: its window starts at steps congruent to ``(l + 2) mod T``, which is its reset
offset. Its recorded spikes are read back from the same windows.

This module imports Lava; call it through :func:`spikeport.deploy.supervise.run_lava` so that Lava
lives in a supervised child process.
"""
from __future__ import annotations

import numpy as np

from spikeport.core import loihi
from spikeport.deploy.netdef import Connection, LoihiNet


def window_offset(layer_index: int, time_steps: int) -> int:
    """Reset offset (Lava step modulo T) at which population ``layer_index``'s sample window starts."""
    return (layer_index + 2) % time_steps


def _connection_process(conn: Connection, graded: bool, window: tuple[int, int] | None = None):
    """A Lava Dense/Sparse process for ``conn``; ``window`` (interval, offset) makes a recurrent
    connection that forgets its buffered spikes when a sample window begins."""
    from scipy import sparse

    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    w2, exp2 = loihi.dense_weights_for_lava(conn.weight)
    exp = int(conn.weight_exp + exp2)
    bits = 8 if graded else 0  # graded spikes carry integer payloads (direct-encoded inputs)
    if window is not None:
        from spikeport.deploy.lava_procs.process import WindowedDense

        if conn.sparse:
            raise ValueError(f"{conn.name}: a sparse recurrent connection is not supported on Lava")
        return WindowedDense(weights=w2, weight_exp=exp, num_message_bits=bits, name=conn.name,
                             reset_interval=window[0], reset_offset=window[1])
    if conn.sparse:
        return Sparse(weights=sparse.csr_matrix(w2), weight_exp=exp, num_message_bits=bits, name=conn.name)
    return Dense(weights=w2, weight_exp=exp, num_message_bits=bits, name=conn.name)


def run_network(net: LoihiNet, x: np.ndarray, record: str = "all", fault: str = "") -> list[np.ndarray]:
    """Run samples x [T, B, input_size] integers on Lava. Returns spikes per recorded population as
    [T, B, N] bool (all populations for ``record="all"``, only the last for ``"output"``).
    ``fault="model-raise"`` swaps in a process model that raises inside Lava (for tests)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset

    T, B = x.shape[:2]
    n_layers = len(net.populations)
    steps = B * T + n_layers + 1
    frames = x.reshape(T, B, -1).transpose(1, 0, 2).reshape(B * T, -1)  # sample-major stream
    stream = np.zeros((net.input_size, steps), dtype=np.int32)
    stream[:, : B * T] = frames.T
    source = Source(data=stream)
    prev_out = source.s_out
    sinks = []
    for idx, pop in enumerate(net.populations):
        conn = _connection_process(pop.input, graded=(idx == 0 and net.graded_input))
        lif = LIFReset(shape=(pop.size,), du=int(pop.lif.du), dv=int(pop.lif.dv), vth=int(pop.lif.vth),
                       bias_mant=np.asarray(pop.lif.bias_mant, dtype=np.int32) * np.ones(pop.size, np.int32),
                       bias_exp=int(pop.lif.bias_exp), reset_interval=int(T),
                       reset_offset=window_offset(idx, T), name=pop.name)
        prev_out.connect(conn.s_in)
        conn.a_out.connect(lif.a_in)
        if pop.recurrent is not None:
            rec = _connection_process(pop.recurrent, graded=False, window=(int(T), window_offset(idx, T)))
            lif.s_out.connect(rec.s_in)
            rec.a_out.connect(lif.a_in)
        if record == "all" or idx == n_layers - 1:
            sink = Sink(shape=(pop.size,), buffer=steps)
            lif.s_out.connect(sink.a_in)
            sinks.append((idx, sink))
        prev_out = lif.s_out
    try:
        source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [(idx, sink.data.get()) for idx, sink in sinks]
    finally:
        source.stop()
    out = []
    for idx, data in raw:
        start = idx + 1  # column of Lava step (idx + 2): the first step of sample 0's window
        block = np.asarray(data)[:, start: start + B * T] != 0  # [N, B*T]
        out.append(block.T.reshape(B, T, -1).transpose(1, 0, 2))
    return out
