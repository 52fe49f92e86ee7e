"""Run a netx HDF5 file (``model.net``) on Lava's bit-accurate Loihi model, through lava-dl's own loader
``lava.lib.dl.netx.hdf5.Network`` (every synapse and neuron is the process netx builds).

Streaming as in :mod:`spikeport.deploy.lava_backend`: samples back to back from a ``FrameSource`` (frame k
at Lava step k+1), ``Network(reset_interval=T, reset_offset=1)`` so that block i resets at the step its
sample window begins (``lava_backend.window_offset(i, T)``: netx adds 1 + i), a ``SpikeRecorder`` on every
block's output, read back with ``lava_backend.align``.

One addition for recurrent blocks: netx's ``RecurrentDense`` feeds a block's spikes back through a plain
Lava ``Dense`` that holds them one step, so the first step of sample n would receive the last spikes of
sample n-1. The run pauses before each such window and zeros that synapse's buffer (``Var.set`` on
``a_buff``), exactly what starting each sample from a fresh state does.

This module imports Lava and lava-dl; call it through :func:`spikeport.deploy.supervise.run_netx`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.deploy.lava_backend import align, window_offset


def _conv_input(block) -> bool:
    return type(block).__name__ == "Conv"


def _flat_port(port, shape: tuple):
    """A block's output port in spikeport's flat C-major order (netx blocks are (W, H, C))."""
    if len(shape) == 3:
        return port.transpose((2, 1, 0)).reshape((int(np.prod(shape)),))
    return port


def build(path: str | Path, x: np.ndarray, record_dir: str, message_bits: int, sparse_fc: bool = False):
    """netx Network plus source and recorders for x [T, B, ...] (x [T, B, C, H, W] also gives netx the input
    shape a file without input block needs); returns (source, network, recorded, steps).
    ``recorded``: [(block index, n, file)] for every block."""
    from lava.lib.dl import netx

    from spikeport.deploy.lava_procs.process import FrameSource
    from spikeport.deploy.netx_procs.process import SpikeRecorder

    T, B = x.shape[:2]
    shape = tuple(int(s) for s in x.shape[2:][::-1]) if x.ndim == 5 else None  # (W, H, C) for a conv input
    network = netx.hdf5.Network(net_config=str(path), input_message_bits=int(message_bits), input_shape=shape,
                                reset_interval=int(T), reset_offset=window_offset(0, T) - 1,
                                sparse_fc_layer=bool(sparse_fc))
    steps = B * T + len(network.layers) + 1
    frames = x.reshape(T, B, -1).transpose(1, 0, 2).reshape(B * T, -1)
    source = FrameSource(frames=np.ascontiguousarray(frames, dtype=np.int32))
    first = network.layers[0]
    port = source.s_out
    if _conv_input(first):  # spikeport's (C, H, W) C-major -> netx's (W, H, C)
        w, h, c = first.inp.shape
        port = port.reshape((c, h, w)).transpose((2, 1, 0))
    port.connect(network.inp)
    recorded = []
    for i, block in enumerate(network.layers):
        shape = tuple(block.out.shape)
        n = int(np.prod(shape))
        file = f"{record_dir}/b{i}.npy"
        rec = SpikeRecorder(shape=(n,), record_path=file, record_steps=steps)
        _flat_port(block.out, shape).connect(rec.s_in)
        recorded.append((i, n, file))
    return source, network, recorded, steps


def reset_pauses(network, T: int, B: int) -> list[tuple[int, list]]:
    """(Lava step after which to pause, [recurrent synapses to clear]) for every later sample window of a
    netx ``Network`` built with ``reset_interval=T, reset_offset=1`` whose input gives sample n at steps
    n*T+1 .. n*T+T: block i's window n starts at step n*T + i + 2."""
    by_step: dict[int, list] = {}
    for i, block in enumerate(network.layers):
        syn = getattr(block, "synapse_rec", None)
        if syn is None:
            continue
        for n in range(1, B):
            by_step.setdefault(n * T + i + 1, []).append(syn)
    return sorted(by_step.items())


def run_windows(network, T: int, B: int, run_cfg, *, runner=None, reset_recurrent: bool = True) -> int:
    """Run ``B`` sample windows of ``T`` steps through a netx ``Network`` as spikeport verifies it: pause
    before each later window of a recurrent block and zero that block's one-step synapse buffer (netx's
    ``RecurrentDense`` has no reset of its own, so sample n would otherwise receive the last spikes of
    sample n-1), then run to the end (``B*T + len(network.layers) + 1`` steps, the last block's lag).

    ``run_cfg``: ``Loihi2SimCfg(select_tag="fixed_pt")`` here (tested against the emulator), or
    ``Loihi2HwCfg()`` on a machine with Intel's lava-loihi (not run by spikeport). ``runner``: the process
    to call ``run`` on (default the network; any process of the connected graph runs all of it).
    ``reset_recurrent=False`` runs without the buffer reset (to measure what it changes). Returns the
    number of steps run.
    """
    from lava.magma.core.run_conditions import RunSteps

    runner = network if runner is None else runner
    steps = B * T + len(network.layers) + 1
    done = 0
    for at, synapses in reset_pauses(network, T, B) + [(steps, [])]:
        if at > done:
            runner.run(condition=RunSteps(num_steps=at - done), run_cfg=run_cfg)
            done = at
        for syn in synapses if reset_recurrent else []:
            syn.a_buff.set(np.zeros(syn.a_buff.shape, np.int32))
    return steps


def run_file(path: str | Path, x: np.ndarray, message_bits: int | None = None,
             reset_recurrent: bool = True) -> list[np.ndarray]:
    """Run samples x [T, B, ...] (integers) through the netx file on Lava fixed_pt. Returns spikes per
    block, [T, B, N] bool (N flat, C-major for conv blocks), aligned to spikeport's sample windows.
    ``message_bits``: of the input (default: the file's ``input_message_bits`` attribute, else 0). A file
    whose ``sparse_fc_layer`` attribute is true runs with ``Network(sparse_fc_layer=True)`` (Lava Sparse).
    ``reset_recurrent``: see :func:`run_windows`."""
    import tempfile

    import h5py
    from lava.magma.core.run_configs import Loihi2SimCfg

    with h5py.File(path, "r") as fh:
        message_bits = int(fh.attrs.get("input_message_bits", 0)) if message_bits is None else message_bits
        sparse_fc = bool(fh.attrs.get("sparse_fc_layer", False))
    T, B = x.shape[:2]
    with tempfile.TemporaryDirectory(prefix="spikeport-netx-rec-") as tmp:
        source, network, recorded, steps = build(path, x, tmp, message_bits, sparse_fc)
        try:
            run_windows(network, T, B, Loihi2SimCfg(select_tag="fixed_pt"), runner=source,
                        reset_recurrent=reset_recurrent)
            raw = [(i, np.unpackbits(np.load(f), axis=1, count=n).astype(bool)) for i, n, f in recorded]
        finally:
            source.stop()
    return [align(data, i, T, B) for i, data in raw]
