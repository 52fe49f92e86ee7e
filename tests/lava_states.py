"""Run a LoihiNet on Lava itself, streaming exactly as ``lava_backend`` does, with Lava ``Monitor``s on
every population's u, v and spikes: Lava's own state at every step, independent of spikeport's
recording. Lava is imported when this module is imported (so test collection imports it before
anything else fixes multiprocessing's start method); the run is always stopped."""
from __future__ import annotations

import tempfile

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.monitor.process import Monitor

from spikeport.core.net import LoihiNet
from spikeport.deploy import lava_backend


def lava_states(net: LoihiNet, x: np.ndarray):
    """x [T, B, ...] -> per population (s, u, v, s_recorded), each [T, B, N]: spikes and state read by
    Monitors, and the spikes the population recorded itself (spikeport's LoihiLIF)."""
    T, B = x.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        built = lava_backend.build_network(net, x, tmp, "all")
        source, lifs, recorded, steps = built.source, built.neurons, built.recorded, built.steps
        monitors = []
        for lif in lifs:
            mons = (Monitor(), Monitor(), Monitor())
            mons[0].probe(lif.s_out, steps)
            mons[1].probe(lif.u, steps)
            mons[2].probe(lif.v, steps)
            monitors.append(mons)
        try:
            source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            raw = []
            for lif, (ms, mu, mv), (_, n, path, _graded) in zip(lifs, monitors, recorded):
                s = ms.get_data()[lif.name]["s_out"]
                u = mu.get_data()[lif.name]["u"]
                v = mv.get_data()[lif.name]["v"]
                own = np.unpackbits(np.load(path), axis=1, count=n).astype(bool)
                raw.append([np.asarray(a).reshape(steps, n) for a in (s, u, v)] + [own])
        finally:
            source.stop()
    out = []
    for idx, (s, u, v, own) in enumerate(raw):
        out.append((lava_backend.align(s != 0, idx, T, B), lava_backend.align(u, idx, T, B).astype(np.int64),
                    lava_backend.align(v, idx, T, B).astype(np.int64), lava_backend.align(own, idx, T, B)))
    return out
