"""Run a netx HDF5 file (``model.net``) on Lava's bit-accurate Loihi model, through lava-dl's own loader
``lava.lib.dl.netx.hdf5.Network`` (every synapse and neuron is the process netx builds).

Two ways to lay samples out, both giving each block's outputs per sample window [T, B, N]:

* **Streaming** (networks of CUBA blocks fed through a synapse, as spikeport writes them): samples back to
  back from a ``FrameSource`` (frame k at Lava step k+1), ``Network(reset_interval=T, reset_offset=1)`` so
  that block i resets at the step its sample window begins (``lava_backend.window_offset(i, T)``: netx adds
  1 + i), a recorder on every block's output, read back with ``lava_backend.align``. netx's
  ``RecurrentDense`` feeds a block's spikes back through a plain ``Dense`` that holds them one step, so
  the first step of sample n would receive the last spikes of sample n-1: the run pauses before each
  such window and zeros that synapse's buffer (``Var.set`` on ``a_buff``), as a fresh start does.
* **Per sample** (:attr:`LoihiNet.isolated_samples`: sigma-delta blocks, which netx builds without reset,
  delays, an input encoder): every sample runs alone for ``lag(L-1) + T`` steps from a zeroed network:
  before each, the run pauses and sets every neuron state and synapse buffer to zero (and, for a bias
  encoder, the input neurons' ``bias_mant`` to the sample's frame, as lava-dl's tests drive
  ``net.in_layer.neuron.bias_mant``). An ``a_in`` encoder (SDNN input) receives the frames on its
  neuron's input port, as lava-dl's PilotNet SDNN runs do.

Graded blocks (sigma-delta) are recorded as int32 payloads; a regression output's value per step (a
non-spiking LIF's voltage, read through a RefPort after every step) as int32 too.

netx 0.6.0 cannot build a file whose neurons carry ``messageBits``: its ``NetDict`` returns that dataset
as a wrapper, not a number, and the next synapse's ``num_message_bits`` fails to build. The field only
decides whether that synapse reads graded or binary messages, and on Lava's CPU models a LIF sends 1 per
spike either way while any positive width reads a sigma-delta payload alike; so netx runs a copy of the
file without the field (:func:`runnable_copy`) wherever that leaves the arithmetic unchanged, and refuses
otherwise (an SDNN block declaring 0 message bits).

This module imports Lava and lava-dl; call it through :func:`spikeport.deploy.supervise.run_netx`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.deploy.lava_backend import align, segments, set_frame, window_offset, zero_state


def _flat_port(port, shape: tuple):
    """A block's output port in spikeport's flat C-major order (netx blocks are (W, H, C))."""
    if len(shape) == 3:
        return port.transpose((2, 1, 0)).reshape((int(np.prod(shape)),))
    return port


def _into(port, shape: tuple):
    """A flat C-major port adapted to a (W, H, C) input of netx."""
    if len(shape) == 3:
        w, h, c = shape
        return port.reshape((c, h, w)).transpose((2, 1, 0))
    return port


def _network(path, x: np.ndarray, message_bits: int, sparse_fc: bool, reset: bool, spike_exp: int):
    from lava.lib.dl import netx

    T = x.shape[0]
    shape = tuple(int(s) for s in x.shape[2:][::-1]) if x.ndim == 5 else None  # (W, H, C) for a conv input
    return netx.hdf5.Network(net_config=str(path), input_message_bits=int(message_bits), input_shape=shape,
                             reset_interval=int(T) if reset else None,
                             reset_offset=window_offset(0, T) - 1 if reset else 0,
                             sparse_fc_layer=bool(sparse_fc), spike_exp=int(spike_exp))


def _recorders(network, record_dir: str, steps: int, graded: list[bool], value_of_last: bool) -> list:
    """[(block index, n, file, graded)] recording every block's output; (-1, ...) the last block's v."""
    from spikeport.deploy.netx_procs.process import SpikeRecorder, VarRecorder

    recorded = []
    for i, block in enumerate(network.layers):
        shape = tuple(block.out.shape)
        n = int(np.prod(shape))
        file = f"{record_dir}/b{i}.npy"
        rec = SpikeRecorder(shape=(n,), record_path=file, record_steps=steps, graded=graded[i])
        _flat_port(block.out, shape).connect(rec.s_in)
        recorded.append((i, n, file, graded[i]))
    if value_of_last:
        neuron = network.layers[-1].neuron
        file = f"{record_dir}/value.npy"
        reader = VarRecorder(shape=tuple(neuron.v.shape), record_path=file, record_steps=steps)
        reader.connect_var(neuron.v)
        recorded.append((-1, int(np.prod(neuron.v.shape)), file, True))
    return recorded


def _read(recorded, network) -> dict:
    """{block index (-1: the last block's v): rows [steps, N] in spikeport's C-major order}."""
    from spikeport.deploy.lava_backend import read_recording

    out = {}
    for i, n, file, graded in recorded:
        data = read_recording(file, n, graded)
        shape = tuple(network.layers[-1].neuron.v.shape) if i == -1 else ()
        if len(shape) == 3:  # v is read in netx's (W, H, C) order
            data = data.reshape(len(data), *shape).transpose(0, 3, 2, 1).reshape(len(data), -1)
        out[i] = data
    return out


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
    """Run ``B`` sample windows of ``T`` steps through a netx ``Network`` as spikeport verifies it (streaming,
    module docstring): pause before each later window of a recurrent block and zero that block's one-step
    synapse buffer, then run to the end (``B*T + len(network.layers) + 1`` steps, the last block's lag).

    ``run_cfg``: ``Loihi2SimCfg(select_tag="fixed_pt")`` here (tested against the emulator), or
    ``Loihi2HwCfg()`` on a machine with Intel's lava-loihi (not run by spikeport). ``runner``: the process
    to call ``run`` on (default the network; any process of the connected graph runs all of it).
    ``reset_recurrent=False`` runs without the buffer reset (to measure what it changes). Returns the
    number of steps run."""
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


def _state_procs(network) -> list:
    """Every process of netx's blocks that holds state across steps (neurons, synapses)."""
    return [getattr(block, part) for block in network.layers for part in ("neuron", "synapse", "synapse_rec")
            if getattr(block, part, None) is not None]


def runnable_copy(path: str | Path, folder: str) -> Path:
    """``path``, or a copy in ``folder`` without the ``messageBits`` datasets netx 0.6.0 cannot read (module
    docstring); a one-line error where dropping one would change what netx computes."""
    import shutil

    import h5py

    from spikeport.errors import SpikeportError

    with h5py.File(path, "r") as fh:
        found = []
        for key in fh["layer"]:
            neuron = fh["layer"][key].get("neuron")
            if isinstance(neuron, h5py.Group) and "messageBits" in neuron:
                kind = neuron["type"][()]
                kind = (kind.reshape(-1)[0] if hasattr(kind, "reshape") else kind)
                kind = kind.decode() if isinstance(kind, bytes) else str(kind)
                if kind == "SDNN" and int(np.asarray(neuron["messageBits"][()]).reshape(())) == 0:
                    raise SpikeportError(f"{path}: block {key}: an SDNN block with messageBits 0 (netx 0.6.0 cannot "
                                         "read messageBits, and without it the next synapse would read graded "
                                         "payloads)")
                found.append(key)
    if not found:
        return Path(path)
    copy = Path(folder) / "runnable.net"
    shutil.copyfile(path, copy)
    with h5py.File(copy, "a") as fh:
        for key in found:
            del fh["layer"][key]["neuron"]["messageBits"]
    return copy


def run_file(path: str | Path, x: np.ndarray, message_bits: int | None = None, spike_exp: int | None = None,
             with_values: bool = False, output: str | None = None, reset_recurrent: bool = True):
    """Run samples x [T, B, ...] (integers) through the netx file on Lava fixed_pt. Returns outputs per
    block, [T, B, N] (spikes bool, sigma-delta payloads int32; N flat, C-major), aligned to spikeport's
    sample windows, and with ``with_values`` also the regression output's value per step [T, B, N] int64
    (None for a classifier). ``message_bits``: of the input (default: the file's ``input_message_bits``
    attribute, else 0); ``spike_exp``: netx's ``Network(spike_exp=...)`` (default: the file's ``spike_exp``
    attribute, else netx's 6); ``output``: the last block's spikes or values (:func:`spikeport.nirfmt.netx_net.read`). A file whose ``sparse_fc_layer``
    attribute is true runs with Lava Sparse synapses. ``reset_recurrent=False`` (streaming runs only) leaves
    the recurrent buffers uncleared between samples, to measure what the reset changes (:func:`run_windows`)."""
    import tempfile

    import h5py

    from spikeport.nirfmt import netx as rules
    from spikeport.nirfmt.netx_net import read

    with h5py.File(path, "r") as fh:
        message_bits = int(fh.attrs.get("input_message_bits", 0)) if message_bits is None else message_bits
        sparse_fc = bool(fh.attrs.get("sparse_fc_layer", False))
        file_exp = int(fh.attrs.get("spike_exp", rules.SPIKE_EXP))  # written by spikeport for a trained SDNN
    spike_exp = file_exp if spike_exp is None else int(spike_exp)
    T, B = x.shape[:2]
    net, _ = read(path, T, graded=message_bits > 0 or None,
                  input_shape=tuple(int(s) for s in x.shape[2:]) if x.ndim == 5 else None, spike_exp=spike_exp,
                  output=output or "auto")
    value_of_last = net.regression and net.populations[-1].lif is not None
    with tempfile.TemporaryDirectory(prefix="spikeport-netx-rec-") as tmp:
        path = runnable_copy(path, tmp)
        if net.isolated_samples:
            outs = _run_per_sample(path, net, x, tmp, message_bits, sparse_fc, spike_exp, value_of_last)
        else:
            outs = _run_streaming(path, net, x, tmp, message_bits, sparse_fc, spike_exp, value_of_last,
                                  reset_recurrent)
    spikes = [outs[i] for i in range(len(net.populations))]
    values = None
    if with_values and net.regression:
        values = (outs[-1] if value_of_last else spikes[-1]).astype(np.int64)
    return (spikes, values) if with_values else spikes


def _run_streaming(path, net, x, tmp, message_bits, sparse_fc, spike_exp, value_of_last,
                   reset_recurrent: bool = True) -> dict:
    from lava.magma.core.run_configs import Loihi2SimCfg

    from spikeport.deploy.lava_procs.process import FrameSource

    T, B = x.shape[:2]
    network = _network(path, x, message_bits, sparse_fc, True, spike_exp)
    steps = B * T + len(network.layers) + 1
    frames = x.reshape(T, B, -1).transpose(1, 0, 2).reshape(B * T, -1)
    source = FrameSource(frames=np.ascontiguousarray(frames, dtype=np.int32))
    _into(source.s_out, tuple(network.layers[0].inp.shape)).connect(network.inp)
    recorded = _recorders(network, tmp, steps, [p.graded for p in net.populations], value_of_last)
    try:
        run_windows(network, T, B, Loihi2SimCfg(select_tag="fixed_pt"), runner=source,
                    reset_recurrent=reset_recurrent)
        raw = _read(recorded, network)
    finally:
        source.stop()
    return {i: align(data, i if i >= 0 else len(net.populations) - 1, T, B) for i, data in raw.items()}


def _run_per_sample(path, net, x, tmp, message_bits, sparse_fc, spike_exp, value_of_last) -> dict:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from spikeport.deploy.lava_procs.process import FrameSource

    T, B = x.shape[:2]
    network = _network(path, x, message_bits, sparse_fc, False, spike_exp)
    seg = net.lag(len(net.populations) - 1) + T  # every population's window fits in a segment
    steps = B * seg
    flat = x.reshape(T, B, -1)
    frames = np.zeros((B, seg, flat.shape[2]), np.int32)
    frames[:, :T] = flat.transpose(1, 0, 2)
    source = FrameSource(frames=frames.reshape(B * seg, -1))
    first = network.layers[0]
    if net.encoder == "a_in":
        _into(source.s_out, tuple(first.neuron.a_in.shape)).connect(first.neuron.a_in)
    elif net.encoder is None:
        _into(source.s_out, tuple(first.inp.shape)).connect(network.inp)
    recorded = _recorders(network, tmp, steps, [p.graded for p in net.populations], value_of_last)
    procs = _state_procs(network)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    runner = network if net.encoder == "bias" else source
    try:
        for n in range(B):
            zero_state(procs, n == 0)
            if net.encoder == "bias":  # as lava-dl drives net.in_layer.neuron.bias_mant, in netx's (W, H, C)
                frame = flat[0, n].reshape(net.populations[0].tensor_shape)
                set_frame(first.neuron.bias_mant, frame.transpose(2, 1, 0) if frame.ndim == 3 else frame, n == 0)
            runner.run(condition=RunSteps(num_steps=seg), run_cfg=cfg)
        raw = _read(recorded, network)
    finally:
        runner.stop()
    return {i: segments(data, net.lag(i if i >= 0 else len(net.populations) - 1), T, B, seg)
            for i, data in raw.items()}
