"""A netx file -> the :class:`LoihiNet` lava-dl 0.6.0's ``netx.hdf5.Network`` builds from it, block by block.

Every block netx builds is read (:data:`BLOCKS`); what netx itself cannot build, or what would change the
arithmetic silently, is refused in one line naming the file and the block. The rules (what netx hands to
Lava, field by field) are in :mod:`spikeport.nirfmt.netx`; this module applies them:

* ``input`` with a neuron: an encoder population (``CUBA``: a LIF driven by its bias, the sample's frame;
  ``SDNN``: a ``delta`` population whose input port receives the frames). Its ``weight`` / ``bias``
  datasets are the input *transform* netx stores and never applies (:func:`read`'s ``transform``).
  Without a neuron: the input shape only.
* ``dense`` / ``dense_rec`` / ``conv``: a connection (netx's weight shift, Lava's clip and truncation,
  per-synapse ``delay`` on dense blocks) into a population; a block without ``neuron`` gets netx's
  non-leaky integrator (du = -1, dv = 4096, threshold out of reach).
* ``flatten``: the next dense block reads the spatial output C-major, as netx's transpose does.
* neurons ``CUBA`` / ``LOIHI`` (LIF; ``refDelay`` and ``gradedSpike`` are read by no netx code),
  ``SDNN`` (``Delta`` input, ``Sigma`` when the group has a ``sigma_output`` key, else ``SigmaDelta``
  with ReLU whatever ``activation`` says).

Refused: ``pool``, ``convT``, ``unpool``, ``average``, ``concat`` (netx raises NotImplementedError);
``dense_comp`` and complex weights, and ``RF`` / ``RF_IZ`` neurons (netx 0.6.0 has no
``create_complex_dense``, and an RF neuron has no ``a_in`` port for a real synapse); other neuron types;
block types netx skips silently; a sigma output with a bias (netx passes it to ``Sigma``, which takes
none); negative delays (Lava never delivers them); a recurrent block with delays and more inputs than
neurons (netx hands the feed-forward delay matrix to the recurrent synapse).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.core import linear, loihi
from spikeport.core.net import MAX_DELAY, Connection, LoihiNet, Population
from spikeport.core.sigma_delta import SigmaDeltaParams
from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.nirfmt import netx as rules
from spikeport.nirfmt.netx_read import read_blocks

BLOCKS = ("input", "flatten", "dense", "dense_rec", "conv")
NOT_BUILT = {"pool": "netx 0.6.0 raises NotImplementedError for it", "convT": "netx 0.6.0 raises NotImplementedError",
             "unpool": "netx 0.6.0 raises NotImplementedError", "average": "netx 0.6.0 raises NotImplementedError",
             "concat": "netx 0.6.0 raises NotImplementedError",
             "dense_comp": "netx 0.6.0 cannot build it (its Network has no create_complex_dense)"}


def _err(path, block: dict, why: str) -> SpikeportError:
    return SpikeportError(f"{path}: block {block['index']} ({block['type']!r}): {why}")


def _int(neuron: dict, key: str, path, block) -> int:
    try:
        return int(np.asarray(neuron[key]).reshape(()))
    except (KeyError, TypeError, ValueError):
        raise _err(path, block, f"neuron needs a scalar '{key}'") from None


def _int8_times_pow2(w: np.ndarray, exp: int) -> tuple[np.ndarray, int] | None:
    """w (int) with summed input shift(w @ s, exp) -> (int8 q, exponent) computing the same, or None."""
    nz = w[w != 0]
    j = 0
    while nz.size and j < 8 and not np.any(nz % (1 << (j + 1))):
        j += 1
    q = w >> j
    if q.size and (q.min() < loihi.WEIGHT_MIN or q.max() > loihi.WEIGHT_MAX):
        return None
    return q.astype(np.int8), exp + j


def _dense_weights(lw: np.ndarray, exp: int, name: str, **kw) -> Connection:
    """Lava's effective weights and exponent -> a connection: int8 where they are an int8 value times a
    power of two, else held as Lava uses them (``native``)."""
    fit = _int8_times_pow2(lw, exp)
    if fit is not None:
        return Connection(name, fit[0], fit[1], **kw)
    return Connection(name, lw.astype(np.int16), exp, native=True, **kw)


def _bias(block: dict, shape: tuple, size: int, path) -> np.ndarray:
    """The block's bias per neuron, C-major, as netx's ``_neuron`` broadcasts it (dense: any value count
    that Lava broadcasts; spatial: per neuron in netx's (W, H, C) layout, or per channel)."""
    if "bias" not in block:
        return np.zeros(size, np.int64)
    b = np.asarray(block["bias"], np.int64)
    if len(shape) != 3:
        if b.size not in (1, size):
            raise _err(path, block, f"bias of {b.size} values for {size} neurons")
        return np.broadcast_to(b.reshape(-1), (size,)).copy()
    c, h, w = shape
    if b.shape == (w, h, c):
        return b.transpose(2, 1, 0).reshape(-1)
    if b.ndim == 1 and b.size in (1, c):
        return np.repeat(np.broadcast_to(b, (c,)), h * w)
    raise _err(path, block, f"bias of shape {b.shape} fits neither (W, H, C) = {(w, h, c)} nor {c} channels "
                            "(netx refuses it)")


def _neuron(block: dict, shape: tuple, size: int, path, spike_exp: int, first: bool):
    """(LIFParams or None, SigmaDeltaParams or None, message bits) for a block's neuron group."""
    neuron = block.get("neuron")
    if neuron is None:
        neuron = rules.DEFAULT_NEURON  # netx's non-leaky integrator
    if not isinstance(neuron, dict):
        raise _err(path, block, "'neuron' must be a group")
    kind = str(neuron.get("type", ""))
    bits = neuron.get("messageBits")
    if kind in rules.NEURON_TYPES:
        bias = np.zeros(size, np.int64) if first else _bias(block, shape, size, path)
        try:
            lif = loihi.LIFParams(du=_int(neuron, "iDecay", path, block) - rules.IDECAY_OFFSET,
                                  dv=_int(neuron, "vDecay", path, block), vth=_int(neuron, "vThMant", path, block),
                                  bias_mant=bias, bias_exp=rules.BIAS_EXP)
        except ValueError as err:
            raise _err(path, block, str(err)) from None
        return lif, None, _bits(bits, rules.LIF_MESSAGE_BITS, path, block)
    if kind == rules.SDNN:
        sd_kind = "delta" if first else ("sigma" if "sigma_output" in neuron else "sigma_delta")
        if sd_kind == "sigma" and "bias" in block:
            raise _err(path, block, "a sigma output with a bias (netx hands it to Lava's Sigma, which takes none)")
        try:
            sd = SigmaDeltaParams(sd_kind, vth=0 if sd_kind == "sigma" else _int(neuron, "vThMant", path, block),
                                  bias=_bias(block, shape, size, path) if sd_kind == "sigma_delta" else 0,
                                  spike_exp=int(spike_exp), relu=True)
        except ValueError as err:
            raise _err(path, block, str(err)) from None
        return None, sd, _bits(bits, rules.SDNN_MESSAGE_BITS, path, block)
    if "RF" in kind:
        raise _err(path, block, f"neuron type {kind!r}: netx 0.6.0 cannot build it here (resonate-and-fire neurons "
                                "take complex synapses, and its Network has no create_complex_dense)")
    raise _err(path, block, f"neuron type {kind!r} (netx builds CUBA, LOIHI and SDNN neurons)")


def _bits(value, default: int, path, block) -> int:
    try:
        return rules.message_bits(value, default)
    except (rules.NotExact, TypeError, ValueError) as err:
        raise _err(path, block, f"messageBits: {err}") from None


def _field(val):
    """A scalar field's value (bytes decoded), or None for an empty one."""
    arr = np.asarray(val).reshape(-1)
    if not arr.size:
        return None
    val = arr[0].item() if isinstance(arr[0], np.generic) else arr[0]
    return val.decode("ascii", "replace") if isinstance(val, bytes) else val


def _delays(block: dict, w: np.ndarray, path) -> np.ndarray | None:
    """The block's delays as netx expands them to one per synapse [out, in] (clamped to 62, cast to int)."""
    if "delay" not in block:
        return None
    d = np.asarray(block["delay"], dtype=np.float64)
    if not np.all(np.isfinite(d)) or (d.size and d.min() < 0):
        raise _err(path, block, "delays must be finite and non-negative (Lava never delivers a negative delay)")
    d = np.clip(d, 0, MAX_DELAY).astype(np.int64)
    if d.ndim == 0:
        return np.full(w.shape, int(d), np.int64)
    if d.ndim == 1 and d.size == w.shape[0]:  # netx: one delay per output neuron (its "axonal" delays)
        return np.repeat(d.reshape(-1, 1), w.shape[1], axis=1)
    if d.ndim == 1 and d.size == w.shape[1]:  # one per input
        return np.repeat(d.reshape(1, -1), w.shape[0], axis=0)
    if d.shape == w.shape:
        return d
    raise _err(path, block, f"delays of shape {d.shape} fit neither the {w.shape[0]} outputs, the {w.shape[1]} "
                            f"inputs nor the weights {w.shape}")


def _dense(block: dict, shape: tuple, flat_next: bool, path, first: bool):
    """(input connection, recurrent connection or None, size) of a dense / dense_rec block."""
    if isinstance(block.get("weight"), dict) or "weight" not in block:
        raise _err(path, block, "complex or missing weights (netx 0.6.0 cannot build complex dense blocks)")
    w = np.asarray(block["weight"], np.int64)
    declared = tuple(int(s) for s in np.asarray(block.get("shape", [])).reshape(-1))
    n_in = int(np.prod(shape))
    if w.ndim == 1 and declared:
        w = w.reshape(int(np.prod(declared)), -1)
    if w.ndim != 2 or w.shape[1] != n_in or (declared and w.shape[0] != int(np.prod(declared))):
        raise _err(path, block, f"weight of shape {w.shape} does not map {n_in} inputs to {declared or '?'}")
    if len(shape) == 3 and not flat_next and not first:
        raise _err(path, block, f"a dense block after a spatial {shape} block needs a flatten block between them")
    rec = block["type"] == "dense_rec"
    wr = np.asarray(block.get("weight_rec"), np.int64) if rec else np.zeros((w.shape[0], 0), np.int64)
    if rec and wr.shape != (w.shape[0], w.shape[0]):
        raise _err(path, block, f"weight_rec of shape {wr.shape}, expected {(w.shape[0], w.shape[0])}")
    delay = _delays(block, w, path)
    try:
        lw, exp = rules.dense_synapse(np.hstack([w, wr]))
    except rules.NotExact as err:
        raise _err(path, block, str(err)) from None
    if rec and delay is not None:  # netx's delayed RecurrentDense passes no weight exponent to either synapse
        if w.shape[1] != w.shape[0]:
            raise _err(path, block, "a recurrent block with delays and more inputs than neurons (netx hands the "
                                    "feed-forward delays to the recurrent synapse)")
        exp = 0
    in_shape = shape if len(shape) == 3 else ()
    conn = _dense_weights(lw[:, :w.shape[1]], exp, f"fc{block['index']}", in_shape=in_shape, delay=delay)
    rconn = _dense_weights(lw[:, w.shape[1]:], exp, f"rec{block['index']}", delay=delay) if rec else None
    return conn, rconn, w.shape[0]


def _conv(block: dict, in_shape: tuple, path, max_in: int) -> Connection:
    """A conv block's connection. Lava's Conv uses netx's kernel as it is and wraps its sum to 24 bits: held as
    int8 ``q`` with exponent 0, or ``q`` times ``2**e`` where no sum of inputs up to ``max_in`` can wrap (an
    int8 form NIR can hold), else as the kernel itself (``native``, int16)."""
    w = np.asarray(block.get("weight"), np.int64)
    w = w.reshape(w.shape[:4]) if w.ndim == 5 and w.shape[4] == 1 else w
    if w.ndim != 4:
        raise _err(path, block, f"conv weight of shape {w.shape} (expected [C_out, C_in/groups, kh, kw])")
    if len(in_shape) != 3:
        raise _err(path, block, f"a conv needs a (C, H, W) input, got {in_shape}")
    fit = _int8_times_pow2(w, 0)
    bound = float(np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0)) * max_in
    native = fit is None or (fit[1] != 0 and bound >= loihi.STATE_MAX)
    if native and w.size and (w.min() < -(1 << 15) or w.max() >= 1 << 15):
        raise _err(path, block, f"conv weights up to {int(np.abs(w).max())} do not fit 16 bits")
    q, e = (w.astype(np.int16), 0) if native else fit
    geo = {key: linear.pair(block.get(key, default)) for key, default in (("stride", 1), ("padding", 0), ("dilation", 1))}
    groups = int(np.asarray(block.get("groups", 1)).reshape(()))
    try:
        conn = Connection(f"conv{block['index']}", q, e, kind="conv", in_shape=in_shape, groups=groups, native=native,
                          **geo)
    except ValueError as err:
        raise _err(path, block, str(err)) from None
    if groups < 1 or q.shape[1] * groups != in_shape[0] or q.shape[0] % groups or min(conn.out_shape[1:]) < 1:
        raise _err(path, block, f"weight {q.shape}, groups {groups} do not fit the input {in_shape}")
    return conn


OUTPUTS = ("auto", "spikes", "values")


def read(path: str | Path, time_steps: int, *, graded: bool | None = None,
         input_shape: tuple[int, ...] | None = None, spike_exp: int = rules.SPIKE_EXP,
         output: str = "auto") -> tuple[LoihiNet, dict]:
    """(the network netx builds from the file, notes) for ``time_steps`` steps per sample.

    ``graded``: the network input carries integers (default: the file's ``input_message_bits``
    attribute, else binary spikes; an encoder's frames always do). ``input_shape``: (C, H, W) or (n,),
    needed only when the file has no input block and starts with a conv (as netx needs it).
    ``spike_exp``: netx's ``Network(spike_exp=...)`` for SDNN blocks. ``output``: what the last block
    gives: "values" (a LIF's voltage per step), "spikes", or "auto": values for a Sigma block or a LIF
    whose threshold v cannot pass or that is the largest 17-bit one (131071: netx files write it for an
    integrator read by its voltage, e.g. PilotNet LIF's last block), else spikes. Notes: the input
    transform, fields netx reads and ignores, per block."""
    if output not in OUTPUTS:
        raise SpikeportError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    path = Path(path)
    blocks, attrs = read_blocks(path)
    if graded is None:
        graded = int(np.asarray(attrs.get("input_message_bits", 0)).reshape(-1)[0]) > 0
    shape = tuple(int(s) for s in input_shape) if input_shape else None
    pops: list[Population] = []
    flat_next, first_shape, notes = False, shape, {"transform": None, "ignored": []}
    bits_in = rules.GRADED_MESSAGE_BITS if graded else 0  # message bits reaching the next synapse
    for pos, block in enumerate(blocks):
        try:
            shape, flat_next, first_shape, graded, bits_in = _block(path, block, pos, pops, shape, flat_next,
                                                                    first_shape, graded, bits_in, notes, spike_exp)
        except SpikeportError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, AttributeError) as err:
            raise _err(path, block, f"malformed ({type(err).__name__}: {' '.join(str(err).split())[:120]})") from None
    if not any(p.input is not None for p in pops):
        raise SpikeportError(f"{path}: no dense or conv block")
    last = pops[-1]
    if output == "auto":
        output = "values" if last.lif is not None and last.lif.vth >= loihi.VTH_MAX else "auto"
    elif output == "spikes" and last.value_output:
        raise SpikeportError(f"{path}: the last block ({last.kind}, never spiking) gives values, not spikes")
    if output == "values" and last.lif is None and not last.value_output:
        raise SpikeportError(f"{path}: the last block is a {last.kind} population: its messages are its output")
    return LoihiNet(first_shape, pops, int(time_steps), graded_input=bool(graded), output=output), notes


def _block(path, block, pos, pops, shape, flat_next, first_shape, graded, bits_in, notes, spike_exp):
    """Read one block into ``pops`` (appended); returns the updated reading state (shape, flat_next,
    first_shape, graded, bits_in)."""
    kind = block["type"]
    if kind in NOT_BUILT:
        raise _err(path, block, NOT_BUILT[kind])
    if kind not in BLOCKS:
        raise _err(path, block, f"netx block type {kind!r} (netx skips it silently; spikeport reads "
                                f"{', '.join(BLOCKS)})")
    declared = tuple(int(s) for s in np.asarray(block.get("shape", [])).reshape(-1))
    if kind == "flatten":
        return shape, True, first_shape, graded, bits_in
    if kind == "input":
        if pos != 0:
            raise _err(path, block, "an input block after other blocks")
        shape = first_shape = declared or shape
        if "neuron" not in block:
            return shape, flat_next, first_shape, graded, bits_in
        if not shape:
            raise _err(path, block, "an input block with a neuron needs its 'shape'")
        notes["transform"] = {"weight": int(np.asarray(block.get("weight", rules.TRANSFORM_WEIGHT)).reshape(-1)[0]),
                              "bias": int(np.asarray(block.get("bias", 0)).reshape(-1)[0])}
        size = int(np.prod(shape))
        lif, sd, bits = _neuron(block, shape, size, path, spike_exp, first=True)
        pshape = shape if len(shape) == 3 else ()
        pops.append(Population(f"in{pos}", size, lif, None, shape=pshape, sd=sd, message_bits=bits,
                               encoder="bias" if lif is not None else "a_in"))
        return shape, flat_next, first_shape, True, bits
    if shape is None and kind != "conv":  # no input block: a dense block's inputs say it
        shape = first_shape = (int(np.shape(block.get("weight"))[-1]),)
    if shape is None:
        raise _err(path, block, "the input shape is unknown (give input_shape, as netx needs it)")
    if kind == "conv":
        if "neuron" not in block:
            raise _err(path, block, "a conv block without neuron (netx needs one)")
        if "delay" in block:
            notes["ignored"].append(f"block {pos}: conv delays (netx 0.6.0 builds a Conv without them)")
        graded_src = bits_in > 0 and (pops[-1].graded if pops else graded)
        conn, rec = _conv(block, shape, path, loihi.STATE_MAX if graded_src else 1), None
        size, pshape = int(np.prod(conn.out_shape)), conn.out_shape
        if declared and declared != pshape:
            raise _err(path, block, f"declared shape {declared} differs from the conv output {pshape}")
    else:
        conn, rec, size = _dense(block, shape, flat_next, path, first=not pops)
        pshape = ()
    lif, sd, bits = _neuron(block, pshape, size, path, spike_exp, first=False)
    if bits_in == 0 and pops and pops[-1].graded:  # netx: num_message_bits 0 reads payloads as spikes
        conn.binary = True
    if rec is not None and bits_in == 0 and sd is not None:  # netx gives the block's input bits to its recurrence
        rec.binary = True
    for key in ("refDelay", "gradedSpike", "activation", "weight_exp"):
        if isinstance(block.get("neuron"), dict) and key in block["neuron"]:
            val = _field(block["neuron"][key])
            if (key, val) not in rules.HARMLESS_FIELDS:
                notes["ignored"].append(f"block {pos}: neuron '{key}' = {val!r} (netx 0.6.0 does not use it)")
    pops.append(Population(f"{'lif' if lif else sd.kind}{len(pops)}", size, lif, conn, rec, shape=pshape, sd=sd,
                           message_bits=bits))
    return pshape or (size,), False, first_shape, graded, bits


MAX_STEPS = 100_000


def run_info(run_dir: str | Path) -> dict:
    """A netx run's ``netx_import.json``, checked (one line naming the field when it does not hold)."""
    import json

    path = Path(run_dir) / runfolder.NETX_IMPORT
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SpikeportError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(info, dict):
        raise SpikeportError(f"{path}: must hold a JSON object")
    checks = {"time_steps": lambda v: isinstance(v, int) and 1 <= v <= MAX_STEPS,
              "spike_exp": lambda v: isinstance(v, int) and 0 <= v <= 7,
              "output": lambda v: v in OUTPUTS,
              "graded_input": lambda v: isinstance(v, bool),
              "input_shape": lambda v: isinstance(v, list) and 1 <= len(v) <= 3 and all(isinstance(s, int) and s > 0 for s in v)}
    for key, ok in checks.items():
        if (key in info or key == "time_steps") and not ok(info.get(key)):
            raise SpikeportError(f"{path}: field '{key}' is missing or out of range ({str(info.get(key))[:40]})")
    return info


def read_run(run_dir: str | Path) -> LoihiNet:
    """The network of a run imported from a netx file: its ``source.net`` read as netx builds it, with the
    run's time steps, input message bits and spike exponent (``netx_import.json``)."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    shape = tuple(info["input_shape"]) if "input_shape" in info else None
    net, _ = read(run_dir / runfolder.NETX_SOURCE, info["time_steps"], graded=info.get("graded_input"),
                  input_shape=shape if shape and len(shape) == 3 else None,
                  spike_exp=info.get("spike_exp", rules.SPIKE_EXP), output=info.get("output", "auto"))
    net.meta = {"source_producer": "lava-dl netx", "readout": "spike_count"}
    return net
