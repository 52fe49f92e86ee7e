"""Run tiny networks on Lava itself (in the test process, always stopped) and read u, v per step."""
from __future__ import annotations

import numpy as np


def lava_single_layer(weights: np.ndarray, weight_exp: int, inputs: np.ndarray, *, du: int, dv: int, vth: int,
                      bias_mant=0, bias_exp: int = 0, graded: bool = False):
    """One Dense -> LIF on Lava fixed_pt, monitored every step.

    inputs [steps, n_in] integers are sent by a RingBuffer. Returns (s, u, v), each [steps, n_out],
    in Lava's own time (the Dense connection delays by one step).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    steps, n_out = inputs.shape[0], weights.shape[0]
    src = Source(data=np.ascontiguousarray(inputs.T.astype(np.int32)))
    dense = Dense(weights=weights.astype(np.int32), weight_exp=int(weight_exp), num_message_bits=8 if graded else 0)
    lif = LIF(shape=(n_out,), du=int(du), dv=int(dv), vth=int(vth),
              bias_mant=np.asarray(bias_mant, np.int32) * np.ones(n_out, np.int32), bias_exp=int(bias_exp))
    sink = Sink(shape=(n_out,), buffer=steps)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    mu, mv = Monitor(), Monitor()
    mu.probe(lif.u, steps)
    mv.probe(lif.v, steps)
    try:
        lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        s = np.asarray(sink.data.get()).T != 0
        u = np.asarray(mu.get_data()[lif.name]["u"])
        v = np.asarray(mv.get_data()[lif.name]["v"])
    finally:
        lif.stop()
    return s, u.reshape(steps, n_out), v.reshape(steps, n_out)
