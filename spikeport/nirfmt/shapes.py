"""Per-sample shape of every node of a :class:`~spikeport.nirfmt.flat.FlatGraph` (no batch, no
time), checked edge by edge. A mismatch is an error naming the node and both shapes.

Conventions: Affine/Linear act on a vector ``[in]``; Conv2d, SumPool2d and AvgPool2d on ``[C, H, W]``
(torch layout, NIR's); neuron, Scale, Threshold and Delay nodes keep their input's shape and their
parameters must have one value or one per element. Flatten's dims are batch-less (NIR) unless the
producer counts the batch (Norse), in which case dims >= 1 are shifted down by one; for producers that
write the sample batch into the Input shape (Norse, Rockpool) its leading 1 is dropped.
"""
from __future__ import annotations

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.nirfmt.guard import MAX_INPUTS

ELEMENTWISE = {"Identity", "Output", "Scale", "Threshold", "Delay", "IF", "LI", "LIF", "CubaLIF", "CubaLI",
               "Integrator", "I"}
PARAMS = {"Scale": ("scale",), "Threshold": ("threshold",), "Delay": ("delay",), "IF": ("r", "v_threshold"),
          "LI": ("tau", "r", "v_leak"), "LIF": ("tau", "r", "v_leak", "v_threshold"),
          "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in"),
          "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), "Integrator": ("r",), "I": ("r",)}


def pair(val, name: str, err) -> tuple[int, int]:
    arr = np.asarray(val).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(arr == np.round(arr)):
        raise err(f"{name} must be one or two integers, got {val!r}")
    return int(arr[0]), int(arr[1])


def conv_padding(node, err) -> tuple[int, int]:
    pad = node.padding
    if isinstance(pad, (bytes, np.bytes_)):
        pad = pad.decode()
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "SU":
        pad = str(pad.reshape(()).item() if pad.shape == () else pad[0])
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, str):
        if pad == "valid":
            return 0, 0
        if pad == "same":
            kh, kw = np.asarray(node.weight).shape[-2:]
            dh, dw = pair(node.dilation, "dilation", err)
            if (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2:
                raise err("padding 'same' with an even kernel is asymmetric; not supported")
            return dh * (kh - 1) // 2, dw * (kw - 1) // 2
        raise err(f"unknown padding {pad!r}")
    return pair(pad, "padding", err)


def _out_len(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def node_shape(kind: str, node, shape: tuple[int, ...], flatten_batch: bool, err) -> tuple[int, ...]:
    """Output shape of one node for input ``shape``; ``err(why)`` builds the error naming the node."""
    if kind in ELEMENTWISE:
        n = int(np.prod(shape))
        for fld in PARAMS.get(kind, ()):
            val = getattr(node, fld, None)
            if val is None:
                continue
            size = np.asarray(val).size
            if size not in (1, n):
                raise err(f"{fld} has {size} values but the node receives shape {shape} ({n} values)")
        return shape
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise err(f"weight must be a 2-D [out, in] matrix, got shape {w.shape}")
        if shape != (w.shape[1],):
            raise err(f"expects input shape ({w.shape[1]},) but receives {shape}")
        if kind == "Affine" and np.asarray(node.bias).size not in (1, w.shape[0]):
            raise err(f"bias has {np.asarray(node.bias).size} values for {w.shape[0]} outputs")
        return (int(w.shape[0]),)
    if kind == "Flatten":
        start, end = int(node.start_dim), int(node.end_dim)
        if flatten_batch:
            start, end = (start - 1 if start > 0 else start), (end - 1 if end > 0 else end)
        nd = len(shape)
        s, e = (start + nd if start < 0 else start), (end + nd if end < 0 else end)
        if not 0 <= s <= e < nd:
            raise err(f"cannot flatten dims {node.start_dim}..{node.end_dim} of shape {shape}"
                      f"{' (batch counted, Norse convention)' if flatten_batch else ''}")
        return shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    if kind == "Conv2d":
        w = np.asarray(node.weight)
        if w.ndim != 4 or len(shape) != 3:
            raise err(f"needs a [C, H, W] input and a 4-D weight, got input {shape}, weight {w.shape}")
        groups = int(np.asarray(node.groups))
        if shape[0] != w.shape[1] * groups:
            raise err(f"expects {w.shape[1] * groups} input channels but receives shape {shape}")
        if np.asarray(node.bias).size not in (1, w.shape[0]):
            raise err(f"bias has {np.asarray(node.bias).size} values for {w.shape[0]} channels")
        (sh, sw), (ph, pw) = pair(node.stride, "stride", err), conv_padding(node, err)
        dh, dw = pair(node.dilation, "dilation", err)
        out = (int(w.shape[0]), _out_len(shape[1], w.shape[2], sh, ph, dh), _out_len(shape[2], w.shape[3], sw, pw, dw))
        if min(out) < 1:
            raise err(f"input {shape} is smaller than the kernel")
        return out
    if kind in ("SumPool2d", "AvgPool2d"):
        if len(shape) != 3:
            raise err(f"needs a [C, H, W] input, receives {shape}")
        (kh, kw), (sh, sw) = pair(node.kernel_size, "kernel_size", err), pair(node.stride, "stride", err)
        ph, pw = pair(node.padding, "padding", err)
        out = (shape[0], _out_len(shape[1], kh, sh, ph), _out_len(shape[2], kw, sw, pw))
        if min(out) < 1:
            raise err(f"input {shape} is smaller than the pooling window")
        return out
    if kind == "Conv1d":
        raise err("Conv1d is not supported by spikeport's importer")
    raise err(f"node type {kind} is not supported")


def _input_shape(fg, batched: bool = False) -> tuple[int, ...]:
    node = fg.nodes[fg.input]
    types = getattr(node, "input_type", None) or getattr(node, "output_type", None) or {}
    vals = list(types.values()) if isinstance(types, dict) else []
    if len(vals) != 1:
        raise fg.err(fg.input, "Input node must declare exactly one input shape")
    arr = np.asarray(vals[0])
    if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise fg.err(fg.input, f"Input shape {str(vals[0])[:60]} must be whole numbers")
    shape = tuple(int(s) for s in arr.ravel())
    if not shape or min(shape) < 1:
        raise fg.err(fg.input, f"Input shape {shape} is empty")
    if int(np.prod(shape, dtype=object)) > MAX_INPUTS:
        raise fg.err(fg.input, f"Input shape {shape} has more than {MAX_INPUTS} values")
    if batched and len(shape) > 1 and shape[0] == 1:  # Norse's and Rockpool's to_nir write a batch of 1
        shape = shape[1:]
    return shape


def infer_shapes(fg, flatten_batch: bool = False, input_batch: bool = False) -> dict[str, tuple[int, ...]]:
    """Shapes of all nodes; recurrent inputs must match the shape the node itself produces."""
    shapes = {fg.input: _input_shape(fg, input_batch)}
    in_shapes = dict(shapes)
    srcs = fg.sources
    for name in fg.order:
        if name == fg.input:
            continue
        fwd = [s for s, rec in srcs[name] if not rec]
        if not fwd:
            raise fg.err(name, "has no input (only recurrent edges)")
        got = {shapes[s] for s in fwd}
        if len(got) != 1:
            raise fg.err(name, f"receives inputs of different shapes {sorted(got)}")

        def err(why: str, _n: str = name) -> SpikeportError:
            return fg.err(_n, why)

        in_shapes[name] = got.pop()
        shapes[name] = node_shape(fg.kinds[name], fg.nodes[name], in_shapes[name], flatten_batch, err)
    for a, b in fg.recurrent:
        if shapes[a] != in_shapes[b]:
            raise fg.err(a, f"recurrent edge to '{b}' carries shape {shapes[a]}, '{b}' takes {in_shapes[b]}")
    return shapes
