"""The ``xylo`` backend: SynSense's own Xylo Audio 2 simulator (``xylosim.v2``, C++, the ``spikeport[xylo]``
extra) running a :class:`~spikeport.core.xylo_net.XyloNet`, one sample after another.

``xylosim`` keeps pointers to the Python ``XyloSynapse`` objects it is built from (not copies): they must
outlive the layer, or it reads freed memory (measured: a segmentation fault). :class:`XyloSim` holds
them. It checks no chip limit, so the caller checks :meth:`XyloNet.violations` first.

Returns what :func:`spikeport.deploy.xylo_emulator.run` returns: spike counts per population and, with
``record_states``, the states xylosim records (after each step).
"""
from __future__ import annotations

import numpy as np

from spikeport.core.xylo_net import XyloNet
from spikeport.deploy.xylo_emulator import STATES, XyloRun, check_input
from spikeport.errors import SpikeportError

NEEDS = "the xylo backend needs SynSense's simulator: pip install 'spikeport[xylo]' (xylosim)"


def _synapses(w: np.ndarray, synapse_cls) -> list[list]:
    """w [S, N, K] -> per source, its synapses (target, synapse id, weight) in target order."""
    out = []
    for row in w:
        tgt, syn = np.nonzero(row)
        out.append([synapse_cls(int(n), int(k), int(row[n, k])) for n, k in zip(tgt, syn)])
    return out


class XyloSim:
    """One xylosim layer built from ``net`` (and the synapse objects it points to)."""

    def __init__(self, net: XyloNet):
        try:
            from xylosim.v2 import XyloLayer, XyloSynapse
        except ImportError:
            raise SpikeportError(NEEDS) from None
        self.net = net
        self._syn_in = _synapses(net.weights_in, XyloSynapse)
        self._syn_rec = _synapses(net.weights_rec, XyloSynapse)
        self._syn_out = _synapses(net.weights_out[:, :, None], XyloSynapse)
        ints = lambda a: [int(v) for v in a]  # noqa: E731
        self.layer = XyloLayer(
            self._syn_in, self._syn_rec, self._syn_out, [[] for _ in range(net.n_hidden)],
            ints(net.threshold), ints(net.threshold_out), net.has_bias, ints(net.bias), ints(net.bias_out),
            net.weight_shift_in, net.weight_shift_rec, net.weight_shift_out, ints(net.dash_mem),
            ints(net.dash_mem_out), [[int(a), int(b)] for a, b in zip(net.dash_syn, net.dash_syn_2)],
            [[int(a)] for a in net.dash_syn_out], "spikeport")

    def sample(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One sample x [T, Nin] from zero state -> (hidden [T, Nhid], output [T, Nout], states)."""
        self.layer.reset_all()
        out = np.asarray(self.layer.evolve(np.asarray(x, np.int64).tolist()), np.uint8).reshape(len(x), -1)
        L = self.layer
        hidden = np.asarray(L.rec_recurrent_spikes, np.uint8).reshape(len(x), -1)
        rec = (L.rec_v_mem, L.rec_i_syn, L.rec_i_syn2, L.rec_v_mem_out, L.rec_i_syn_out)
        states = {k: np.asarray(v, np.int16).reshape(-1, len(x)).T for k, v in zip(STATES, rec)}
        return hidden, out, states


def run(net: XyloNet, x: np.ndarray, record_states: bool = False) -> XyloRun:
    """Run ``net`` on x [T, B, Nin] integer event counts with xylosim, sample by sample."""
    x = check_input(net, x)
    sim = XyloSim(net)
    T, B = x.shape[:2]
    spikes = [np.zeros((T, B, net.n_hidden), np.uint8), np.zeros((T, B, net.n_out), np.uint8)]
    states = {k: np.zeros((T, B, net.n_out if k.endswith("_out") else net.n_hidden), np.int16)
              for k in STATES} if record_states else None
    for b in range(B):
        hid, out, st = sim.sample(x[:, b])
        spikes[0][:, b], spikes[1][:, b] = hid, out
        if states is not None:
            for k in STATES:
                states[k][:, b] = st[k]
    return XyloRun(spikes, states)
