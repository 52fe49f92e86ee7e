"""A deployable :class:`LoihiNet` -> lava-dl netx HDF5 (``model.net``), written so that netx on Lava
computes exactly spikeport's integers (conventions: :mod:`spikeport.nirfmt.netx`).

Blocks written, in order: ``input`` (the sample shape, no neuron), then one block per population:
``dense`` / ``dense_rec`` (a ``flatten`` block first where the previous output is spatial) or ``conv``.
A sum pool in front of a connection is folded into its weights: into the dense matrix, or into the
conv kernel when the pool tiles its input (stride x pool); a pool-only population becomes a grouped
conv whose kernel is all ones. Pruned (masked) layers are written with zeros where synapses are
missing (netx's only sparse switch is per network, see ``sparse_fc_layer`` below).

Refused, with one line naming the population: a bias line (constant current into u), KLIF's v floor, a right-shifted summed input
(``weight_exp < 0``: netx has no such field), weights netx would clip or truncate, a bias that is
not a multiple of 64 (netx fixes ``bias_exp = 6``), a conv whose 24-bit output wrap differs from
spikeport's, a pool that does not tile before a conv, recurrent convolutions. Runs trained with
``TrainConfig.target = "netx"`` (the default; ``core.quant``) have no shift and only 64-multiple biases.

Sigma-delta populations (Loihi 2, trained by ``spikeport train --neuron sigma-delta``) become ``SDNN``
blocks as lava-dl's netx builds them: the ``delta`` input encoder is the ``input`` block's neuron
(``vThMant``), a ``sigma_delta`` population a conv / dense block with an ``SDNN`` neuron (``vThMant``,
``activation`` relu) and its ``bias``, a ``sigma`` population the last block, its neuron marked
``sigma_output``. Refused: a spike or state exponent other than netx's (6 and 6), an identity activation
(netx builds ReLU), a bias on a sigma output (Lava's Sigma takes none), LIF and sigma-delta mixed.

Root attributes (ignored by netx, read by spikeport): ``producer``, ``time_steps``,
``input_message_bits`` (8 for a graded first layer: pass it to ``netx.hdf5.Network``), ``spike_exp`` (a
sigma-delta network: pass it to ``netx.hdf5.Network(spike_exp=...)``; netx's default is 6), ``input_shape``,
``sparse_fc_layer`` (a pruned layer: pass ``sparse_fc_layer=True``, netx then makes every dense synapse
a Lava Sparse), and the ``attrs`` a caller adds (a trained sigma-delta run: ``readout``, ``encoder``,
``dataset``; :func:`spikeport.nirfmt.netx_net.read_written` reads them back).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport import __version__
from spikeport.core import linear, loihi
from spikeport.core import sigma_delta as sd_core
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.errors import SpikeportError
from spikeport.files import fileio
from spikeport.nirfmt import netx as rules

GRADED_MAX = (1 << rules.GRADED_MESSAGE_BITS) - 1  # the largest graded input value Lava carries
RETRAIN = 'train with target = "netx" (TrainConfig; the default for new runs) for integers netx can express'


def _fail(path, pop: Population, why: str) -> SpikeportError:
    return SpikeportError(f"{path}: population {pop.name!r} cannot be written as netx: {why}")


def _shifted(weight: np.ndarray, exp: int, pop: Population, where: str, path) -> np.ndarray:
    """Integer weights whose plain product equals ``shift(weight @ s, exp)``."""
    if exp < 0:
        raise _fail(path, pop, f"{where} has weight_exp {exp}, a right shift of the summed input that netx "
                               f"cannot express (netx derives its own exponent from integer weights); {RETRAIN}")
    return np.asarray(weight, np.int64) << exp


def _fits_8bit(w: np.ndarray) -> bool:
    """An int8 value times 2**j: |w| <= 127, or all even and |w| <= 254 (a weight exponent of 1). Lava's
    simulator would accept more (netx asks it for 9-bit mixed-sign weights), Loihi's synapses do not."""
    peak = int(np.abs(w).max()) if w.size else 0
    return peak <= loihi.WEIGHT_MAX or (peak <= 2 * loihi.WEIGHT_MAX and not np.any(w % 2))


def _dense_block(pop: Population, graded: bool, path) -> dict:
    conn = pop.input
    w = _shifted(conn.to_matrix().toarray(), conn.weight_exp, pop, "the input connection", path)
    block = {"type": "dense_rec" if pop.recurrent is not None else "dense", "shape": np.array([pop.size])}
    mats = [w]
    if pop.recurrent is not None:
        rec = pop.recurrent
        wr = _shifted(rec.to_matrix().toarray(), rec.weight_exp, pop, "the recurrent connection", path)
        block["weight_rec"] = wr
        mats.append(wr)
    joint = np.hstack(mats)  # netx chooses one exponent for weight and weight_rec together
    if not (rules.dense_exact(joint) and _fits_8bit(joint)):
        raise _fail(path, pop, f"weights in [{int(joint.min())}, {int(joint.max())}] would be clipped or "
                               "truncated by netx's 8-bit synapse")
    block["weight"] = w
    return block


def _conv_geometry(conn: Connection, pop: Population, path) -> dict:
    """Kernel (torch layout) and geometry of the Lava Conv that computes ``conn`` (pool folded in)."""
    c, h, w = conn.in_shape
    if conn.kind == "pool":
        kernel = np.ones((c, 1, *conn.pool.kernel), np.int64)
        return {"weight": kernel, "stride": conn.pool.stride, "padding": conn.pool.padding,
                "dilation": (1, 1), "groups": c}
    if conn.pool is None:
        return {"weight": np.asarray(conn.weight, np.int64), "stride": conn.stride, "padding": conn.padding,
                "dilation": conn.dilation, "groups": conn.groups}
    if not conn.pool.tiles(h, w):
        raise _fail(path, pop, f"its sum pool {conn.pool.kernel} (stride {conn.pool.stride}, padding "
                               f"{conn.pool.padding}) does not tile the {h}x{w} input, so it cannot be folded "
                               "into a netx conv (netx has no pool block)")
    kp = conn.pool.kernel
    return {"weight": linear.fold_pool_into_kernel(conn.weight, conn.pool, conn.dilation),
            "stride": (conn.stride[0] * kp[0], conn.stride[1] * kp[1]),
            "padding": (conn.padding[0] * kp[0], conn.padding[1] * kp[1]), "dilation": (1, 1),
            "groups": conn.groups}


def _conv_block(pop: Population, graded: bool, path) -> dict:
    conn = pop.input
    if pop.recurrent is not None:
        raise _fail(path, pop, "a recurrent convolution (netx has dense_rec only)")
    geo = _conv_geometry(conn, pop, path)
    exp = 0 if conn.kind == "pool" else conn.weight_exp
    kernel = _shifted(geo["weight"], exp, pop, "the conv", path)
    if not (rules.dense_exact(kernel) and _fits_8bit(kernel)):
        raise _fail(path, pop, f"conv weights in [{int(kernel.min())}, {int(kernel.max())}] leave Loihi's 8-bit "
                               "synapse")
    # Lava's Conv wraps its output to 24 bits; spikeport wraps only where it runs a Lava Conv itself
    bound = float(np.abs(kernel).reshape(kernel.shape[0], -1).sum(1).max()) * (GRADED_MAX if graded else 1)
    if conn.lava_process != "conv" and bound >= loihi.STATE_MAX:
        raise _fail(path, pop, f"its summed input can reach {bound:.0f} >= 2**23, where netx's Conv wraps and "
                               "spikeport's reference does not")
    return {"type": "conv", "shape": np.array(pop.tensor_shape), "weight": kernel,
            "stride": np.array(geo["stride"]), "padding": np.array(geo["padding"]),
            "dilation": np.array(geo["dilation"]), "groups": np.array(int(geo["groups"])),
            "inChannels": np.array(conn.in_shape[0]), "outChannels": np.array(pop.tensor_shape[0])}


def _sd_neuron(pop: Population, block: dict, path) -> None:
    """The SDNN neuron group (and bias) of a sigma_delta or sigma population's block."""
    p = pop.sd
    if int(p.state_exp) != sd_core.STATE_EXP:
        raise _fail(path, pop, f"state_exp {p.state_exp}: netx builds SDNN neurons with {sd_core.STATE_EXP}")
    if p.kind == "sigma":
        block["neuron"] = {"type": rules.SDNN, "sigma_output": True}
        return
    if not p.relu:
        raise _fail(path, pop, "an identity activation (netx builds SigmaDelta neurons with ReLU)")
    block["neuron"] = {"type": rules.SDNN, "activation": "relu", "vThMant": int(p.vth)}
    bias = np.broadcast_to(np.asarray(p.bias, np.int64), (pop.size,))
    if np.any(bias):
        block["bias"] = _spatial_bias(bias, block, pop)


def _spatial_bias(bias: np.ndarray, block: dict, pop: Population) -> np.ndarray:
    """A per-neuron bias [N] (C-major) as netx takes it: per channel when it is, else per neuron in (W, H, C)."""
    if block["type"] != "conv":
        return bias
    per_ch = bias.reshape(pop.tensor_shape[0], -1)
    same = bool(np.all(per_ch == per_ch[:, :1]))
    return per_ch[:, 0] if same else bias.reshape(pop.tensor_shape).transpose(2, 1, 0)


def _neuron(pop: Population, block: dict, path) -> None:
    if pop.sd is not None:
        return _sd_neuron(pop, block, path)
    lif = pop.lif
    if lif.floor_v:
        raise _fail(path, pop, "KLIF's v floor (v = max(v, 0)) has no netx neuron")
    block["neuron"] = rules.neuron_fields(lif.du, lif.dv, lif.vth)
    try:
        bias = rules.netx_bias(np.broadcast_to(lif.effective_bias(), (pop.size,)))
    except rules.NotExact as err:
        raise _fail(path, pop, f"{err}; {RETRAIN}") from None
    if bias.min() < loihi.BIAS_MANT_MIN or bias.max() > loihi.BIAS_MANT_MAX:
        raise _fail(path, pop, f"bias {int(np.abs(bias).max())} << 6 leaves the 13-bit mantissa")
    if np.any(bias):  # netx broadcasts a per-channel bias or takes one per neuron in (W, H, C)
        block["bias"] = _spatial_bias(bias, block, pop)


def netx_blocks(net: LoihiNet, path: str | Path = "model.net") -> list[dict]:
    """The file's blocks (dicts of arrays and the ``neuron`` sub-dict), in order. Raises SpikeportError."""
    blocks: list[dict] = [{"type": "input", "shape": np.array(net.input_shape)}]
    spatial = len(net.input_shape) == 3
    if len({p.sd is None for p in net.populations}) > 1:
        raise _fail(path, net.populations[-1], "LIF and sigma-delta populations in one network (spikeport writes "
                                               "either kind)")
    if len({p.sd.spike_exp for p in net.populations if p.sd is not None and p.kind != "sigma"}) > 1:
        raise _fail(path, net.populations[-1], "sigma-delta populations with different spike_exp (netx gives a "
                                               "network one)")
    for idx, pop in enumerate(net.populations):
        if pop.encoder == "a_in":  # the SDNN input block's Delta neuron, fed the frames
            blocks[0]["neuron"] = {"type": rules.SDNN, "vThMant": int(pop.sd.vth)}
            continue
        if pop.encoder is not None:
            raise _fail(path, pop, "a bias-driven LIF encoder (spikeport writes a_in encoders of sigma-delta nets)")
        graded = net.graded_input if idx == 0 else net.populations[idx - 1].graded
        if any(c is not None and c.wide for c in (pop.input, pop.recurrent, pop.bias_line)):
            raise _fail(path, pop, "its 16-bit weights (two Loihi synapses each, import --weight-bits 16) have no "
                                   "netx block: netx gives a weight one 8-bit synapse")
        if pop.bias_line is not None:
            raise _fail(path, pop, "its bias line (a constant current into u from an always-on input) has no "
                                   "netx block: netx's only bias is added to v")
        if pop.input.kind == "dense":
            if spatial and len(pop.input.in_shape) == 3 and idx > 0:
                blocks.append({"type": "flatten", "shape": np.array([int(np.prod(pop.input.in_shape)), 1, 1])})
            block = _dense_block(pop, graded, path)
            spatial = False
        else:
            block = _conv_block(pop, graded, path)
            spatial = True
        _neuron(pop, block, path)
        blocks.append(block)
    return blocks


def spike_exp_of(net: LoihiNet) -> int | None:
    """The spike_exp netx must be given (``Network(spike_exp=...)``) for a sigma-delta net, else None."""
    exps = {int(p.sd.spike_exp) for p in net.populations if p.sd is not None and p.kind != "sigma"}
    return exps.pop() if exps else None


def _write_group(group, block: dict) -> None:
    for key, val in block.items():
        if key == "type":
            group.create_dataset("type", (1,), "S10", [val.encode("ascii")])
        elif key == "neuron":
            for nkey, nval in val.items():
                data = np.array([nval.encode("ascii")], "S10") if isinstance(nval, str) else nval
                group.create_dataset(f"neuron/{nkey}", data=data)
        else:
            arr = np.asarray(val)
            group.create_dataset(key, data=arr.astype(np.int64) if arr.dtype.kind in "iub" else arr)


def write_netx(net: LoihiNet, path: str | Path, attrs: dict | None = None) -> Path:
    """Write ``net`` as a netx HDF5 file at ``path`` (atomic), with ``attrs`` (str / int values) added to the
    root attributes. Raises SpikeportError where netx cannot compute the same integers (module docstring)."""
    import h5py

    path = Path(path)
    blocks = netx_blocks(net, path)

    def _write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.attrs["producer"] = f"spikeport {__version__}"
            fh.attrs["time_steps"] = int(net.time_steps)
            fh.attrs["input_message_bits"] = rules.GRADED_MESSAGE_BITS if net.graded_input else 0
            fh.attrs["input_shape"] = np.asarray(net.input_shape, np.int64)
            fh.attrs["sparse_fc_layer"] = any(p.input.sparse for p in net.populations if p.input is not None)
            spike_exp = spike_exp_of(net)
            if spike_exp is not None:  # netx's Network(spike_exp=...): not in the file format, so an attribute
                fh.attrs["spike_exp"] = spike_exp
            for key, val in (attrs or {}).items():
                fh.attrs[key] = val
            layer = fh.create_group("layer")
            for i, block in enumerate(blocks):
                _write_group(layer.create_group(str(i)), block)

    fileio.write_with(path, _write)
    return path


def export_netx(nir_path: str | Path, out: str | Path | None = None) -> Path:
    """``model.nir`` (spikeport format) -> ``model.net`` beside it (or ``out``); returns the path."""
    from spikeport.nirfmt.load import load_nir

    nir_path = Path(nir_path)
    net = load_nir(nir_path)
    return write_netx(net, Path(out) if out else nir_path.with_name("model.net"))


def written_accuracy(run_dir: str | Path) -> str:
    """One line on the accuracy of the network a ``model.net`` exported from ``run_dir`` holds: it is the
    checkpoint's own integer network (``write_netx`` changes no integer, it refuses), so its accuracy is
    ``metrics.json``'s ``quantized_accuracy`` (the integer forward on the test set, or on the validation split
    of a run trained with one: ``scored_on``)."""
    from spikeport.files import runfolder

    path = Path(run_dir) / runfolder.METRICS
    if not path.is_file():
        return f"model.net holds the checkpoint's integers unchanged; no {path} gives their accuracy"
    metrics = fileio.read_json(path)
    acc, n = metrics.get("quantized_accuracy"), metrics.get("test_samples")
    if not (isinstance(acc, (int, float)) and 0 <= acc <= 1 and isinstance(n, int) and n > 0):
        raise SpikeportError(f"{path}: fields 'quantized_accuracy' (0..1) and 'test_samples' (> 0) are required")
    split = "validation" if metrics.get("scored_on") == "validation split" else "test"  # a run with a validation split
    return (f"model.net holds the checkpoint's integers unchanged: accuracy {100 * acc:.2f}% on {n} {split} "
            f"samples (Loihi integer forward, {path.name})")
