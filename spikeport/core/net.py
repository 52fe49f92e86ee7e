"""The deployable network: Loihi integer layers read from a ``.nir`` file.

Each population is one Lava LIF process. It is fed by one feed-forward connection from the previous
population (or the input) and optionally by a recurrent connection from itself. A connection is one
integer linear map (:mod:`spikeport.core.linear`): ``dense`` (int8 ``q`` [out, in]), ``conv`` (int8
``[C_out, C_in/groups, kh, kw]``, torch layout) or ``pool`` (a per-channel sum, no weights), optionally
preceded by a sum pool. Its summed input is what Lava delivers: ``shift(W x, weight_exp)`` for Dense /
Sparse, and the 24-bit wrap of ``W x`` for Lava Conv (which ignores ``weight_exp``).

Layout: tensors are kept in torch order, a sample ``[C, H, W]`` flattened C-major; the Lava backend
converts to Lava's ``(W, H, C)`` at each Conv.

Time: each sample runs ``time_steps`` steps per population; within a sample, population l at step t
receives population l-1's spikes of step t (Lava's one-step connection lag is absorbed by streaming
alignment, see ``lava_backend``) and its own spikes of step t-1 through the recurrent connection.

A population may also have a **bias line**: a dense ``[size, 1]`` connection from an input that spikes
on every step of every sample, so its summed input ``shift(q, weight_exp)`` is a constant current into
u (an exact constant synaptic current, e.g. a peer's Linear bias into a current-based synapse; the
LIF's ``bias_mant`` is added to v instead). Lava runs it as a Dense fed by an always-on source.

A dense connection may be **wide**: 16-bit weights in [``loihi.WIDE_MIN``, ``loihi.WIDE_MAX``] at
``weight_exp`` 0, each deployed as two Loihi synapses from the same input (high byte at exponent 8, low
byte at 0; :func:`spikeport.core.loihi.split_wide`). Its summed input is exactly ``W @ x``; it costs two
synapses and two synaptic operations per weight.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikeport.core import linear, loihi
from spikeport.core.linear import Pool2d, pair

KINDS = ("dense", "conv", "pool")




@dataclass
class Connection:
    """One integer linear map into a population (see the module docstring).

    ``weight``: dense int8 [out, in]; conv int8 [C_out, C_in/groups, kh, kw]; pool: unused (empty).
    ``in_shape``: one input sample, (C, H, W) for conv / pool / pooled dense, () for a flat dense input.
    ``pool``: a sum pool applied to the input before the weights (kind ``pool``: the whole map).
    ``sparse`` asks for Lava ``Sparse`` (pruned layers: masked-out weights are zero and not stored).
    ``wide``: 16-bit dense weights, two synapses each (module docstring); weight_exp must be 0.
    """

    name: str
    weight: np.ndarray
    weight_exp: int
    sparse: bool = False
    kind: str = "dense"
    in_shape: tuple[int, ...] = ()
    pool: Pool2d | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    wide: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"connection {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.wide and (self.kind != "dense" or int(self.weight_exp) != 0):
            raise ValueError(f"connection {self.name}: wide weights are dense with weight_exp 0, got "
                             f"{self.kind} with weight_exp {self.weight_exp}")
        self.stride, self.padding, self.dilation = pair(self.stride), pair(self.padding), pair(self.dilation)
        self.in_shape = tuple(int(s) for s in self.in_shape) or (int(self.weight.shape[1]),)
        if self.kind != "dense" and len(self.in_shape) != 3:
            raise ValueError(f"connection {self.name}: a {self.kind} needs a (C, H, W) input, got {self.in_shape}")
        if self.kind == "pool" and self.pool is None:
            raise ValueError(f"connection {self.name}: a pool connection needs its pool geometry")

    # --- shapes ----------------------------------------------------------------------------------
    @property
    def pooled_shape(self) -> tuple[int, ...]:
        """The input after the optional sum pool."""
        if self.pool is None:
            return self.in_shape
        c, h, w = self.in_shape
        return (c, *linear.out_hw(h, w, self.pool.kernel, self.pool.stride, self.pool.padding))

    @property
    def out_shape(self) -> tuple[int, ...]:
        """One output sample: (out,) for dense, (C, H, W) for conv and pool."""
        if self.kind == "dense":
            return (int(self.weight.shape[0]),)
        if self.kind == "pool":
            return self.pooled_shape
        c, h, w = self.pooled_shape
        return (int(self.weight.shape[0]),
                *linear.out_hw(h, w, self.weight.shape[2:], self.stride, self.padding, self.dilation))

    @property
    def synapses_per_weight(self) -> int:
        """Loihi synapses (and synaptic operations per delivered spike) per weight: 2 when wide."""
        return 2 if self.wide else 1

    @property
    def shape(self) -> tuple[int, int]:
        """(outputs, inputs), both flat."""
        return int(np.prod(self.out_shape)), int(np.prod(self.in_shape))

    def weight_t(self) -> np.ndarray:
        """[in, out] int64 for batched products (dense without pool only)."""
        return np.ascontiguousarray(self.weight.T.astype(np.int64))

    # --- arithmetic ------------------------------------------------------------------------------
    def to_matrix(self):
        """The whole map as a scipy CSR matrix [out, in] of int64 (pool folded in, no exponent)."""
        from scipy import sparse

        mat = None if self.pool is None else linear.pool_matrix(self.in_shape, self.pool)
        if self.kind == "conv":
            step = linear.conv_matrix(self.weight, self.pooled_shape, self.stride, self.padding, self.dilation,
                                      self.groups)
        elif self.kind == "dense":
            step = sparse.csr_matrix(np.asarray(self.weight, np.int64))
        else:
            return mat
        out = step if mat is None else (step @ mat).tocsr()
        out.eliminate_zeros()
        return out

    @property
    def lava_process(self) -> str:
        """The Lava process that computes this map exactly: "dense", "sparse" or "conv".

        Lava's Conv ignores ``weight_exp``, so a conv with an exponent runs as the unrolled ``Sparse``
        matrix; so does a conv after a sum pool that does not tile its input (see ``linear``)."""
        if self.kind == "dense":
            return "sparse" if self.sparse else "dense"
        tiles = self.kind == "pool" or self.pool is None or self.pool.tiles(*self.in_shape[1:])
        return "conv" if not self.sparse and loihi.runs_as_lava_conv(self.weight_exp, tiles) else "sparse"

    def lava_conv(self) -> dict:
        """Arguments of Lava's Conv for this map, in Lava's (X, Y) = (W, H) order."""
        if self.lava_process != "conv":
            raise ValueError(f"connection {self.name} does not map to a Lava Conv")
        c, h, w = self.in_shape
        if self.kind == "pool":
            kernel = np.ones((c, 1, *self.pool.kernel), np.int64)
            stride, padding, dilation, groups = self.pool.stride, self.pool.padding, (1, 1), c
        elif self.pool is None:
            kernel, stride, padding, dilation, groups = self.weight, self.stride, self.padding, self.dilation, self.groups
        else:
            kp = self.pool.kernel
            kernel = linear.fold_pool_into_kernel(self.weight, self.pool, self.dilation)
            stride = (self.stride[0] * kp[0], self.stride[1] * kp[1])
            padding, dilation, groups = (self.padding[0] * kp[0], self.padding[1] * kp[1]), (1, 1), self.groups
        return {"weight": linear.to_lava_kernel(kernel).astype(np.int32), "input_shape": (w, h, c),
                "stride": stride[::-1], "padding": padding[::-1], "dilation": dilation[::-1], "groups": int(groups)}

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Summed input [M, out] int64 for inputs x [M, in] (integers), exactly as Lava delivers it."""
        acc, bound = linear.forward(x, self.in_shape, pool=self.pool, kind=self.kind, weight=self.weight,
                                    stride=self.stride, padding=self.padding, dilation=self.dilation,
                                    groups=self.groups)
        if self.lava_process == "conv":  # Lava's Conv: no exponent (0 here), 24-bit wrap
            return acc if bound < loihi.STATE_MAX else loihi.wrap_conv_output(acc)
        return loihi.shift_exp(acc, self.weight_exp)

    def check_loihi(self) -> None:
        """Raise ValueError when the weights Lava would receive do not fit Loihi's 8 bits."""
        w = self.lava_conv()["weight"] if self.lava_process == "conv" else self.to_matrix().data
        lo, hi = (loihi.WIDE_MIN, loihi.WIDE_MAX) if self.wide else (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
        if w.size and (w.min() < lo or w.max() > hi):
            why = " after folding the pool (overlapping pool windows add weights)" if self.pool is not None else ""
            bits = "16 bits as two synapses" if self.wide else "8 bits"
            raise ValueError(f"weights reach {int(np.abs(w).max())}{why}; Loihi has {bits} [{lo}, {hi}]")


@dataclass
class Population:
    """One Loihi LIF population (``size`` neurons) with its incoming connections. ``shape``: the
    population's tensor shape, (C, H, W) after a conv or pool, () for a flat layer."""

    name: str
    size: int
    lif: loihi.LIFParams
    input: Connection
    recurrent: Connection | None = None
    shape: tuple[int, ...] = ()
    bias_line: Connection | None = None

    def __post_init__(self) -> None:
        if self.bias_line is not None and (self.bias_line.kind != "dense" or self.bias_line.shape != (self.size, 1)):
            raise ValueError(f"population {self.name}: a bias line is a dense [{self.size}, 1] connection, "
                             f"got {self.bias_line.kind} {self.bias_line.shape}")

    def line_current(self) -> np.ndarray:
        """The bias line's summed input per step, int64 [size] (zeros without a bias line)."""
        if self.bias_line is None:
            return np.zeros(self.size, np.int64)
        return self.bias_line.apply(np.ones((1, 1), np.int64))[0]

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        return tuple(self.shape) or (self.size,)


@dataclass
class LoihiNet:
    """A network as it runs on Loihi. ``input_shape`` one input sample (flat size ``input_size``);
    ``graded_input``: the first connection receives integer-valued (graded) spikes, e.g. direct-encoded
    pixels 0..255."""

    input_shape: tuple[int, ...]
    populations: list[Population]
    time_steps: int
    graded_input: bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return self.populations[-1].size

    def describe(self) -> str:
        """Layer sizes, e.g. ``784-128-10``; spatial layers as CxHxW (``1x28x28-8x28x28-...``)."""
        spatial = self.populations and self.populations[0].input.kind != "dense" and len(self.input_shape) == 3
        first = "x".join(map(str, self.input_shape)) if spatial else str(self.input_size)
        return "-".join([first] + ["x".join(map(str, p.shape)) if p.shape else str(p.size) for p in self.populations])


def _conn_head(c: Connection) -> dict:
    pool = None if c.pool is None else {"kernel": list(c.pool.kernel), "stride": list(c.pool.stride),
                                        "padding": list(c.pool.padding)}
    return {"name": c.name, "weight_exp": int(c.weight_exp), "sparse": bool(c.sparse), "kind": c.kind,
            "in_shape": list(c.in_shape), "pool": pool, "stride": list(c.stride), "padding": list(c.padding),
            "dilation": list(c.dilation), "groups": int(c.groups), "wide": bool(c.wide)}


def save_arrays(net: LoihiNet) -> dict[str, np.ndarray]:
    """The network as plain arrays (for a child process; read back with :func:`load_arrays`, no pickle)."""
    import json

    out: dict[str, np.ndarray] = {}
    head = {"input_shape": list(net.input_shape), "time_steps": int(net.time_steps),
            "graded_input": bool(net.graded_input), "populations": []}
    for i, p in enumerate(net.populations):
        head["populations"].append({
            "name": p.name, "size": int(p.size), "shape": list(p.shape), "du": int(p.lif.du), "dv": int(p.lif.dv),
            "vth": int(p.lif.vth), "bias_exp": int(p.lif.bias_exp), "floor_v": bool(p.lif.floor_v),
            "recurrent": p.recurrent is not None, "bias_line": p.bias_line is not None,
            "conns": [_conn_head(c) for c in (p.input, p.recurrent, p.bias_line) if c is not None]})
        out[f"p{i}_bias"] = np.broadcast_to(np.asarray(p.lif.bias_mant, np.int64), (p.size,)).copy()
        for j, c in enumerate(c for c in (p.input, p.recurrent, p.bias_line) if c is not None):
            out[f"p{i}_w{j}"] = c.weight
    out["header"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    return out


def load_arrays(arrays) -> LoihiNet:
    import json

    head = json.loads(bytes(np.asarray(arrays["header"], dtype=np.uint8)).decode())
    pops = []
    for i, p in enumerate(head["populations"]):
        conns = []
        for j, c in enumerate(p["conns"]):
            pool = None if c["pool"] is None else Pool2d(**{k: tuple(v) for k, v in c["pool"].items()})
            conns.append(Connection(c["name"], np.asarray(arrays[f"p{i}_w{j}"]), c["weight_exp"], c["sparse"],
                                    kind=c["kind"], in_shape=tuple(c["in_shape"]), pool=pool, stride=c["stride"],
                                    padding=c["padding"], dilation=c["dilation"], groups=c["groups"],
                                    wide=bool(c.get("wide", False))))
        lif = loihi.LIFParams(du=p["du"], dv=p["dv"], vth=p["vth"], bias_mant=np.asarray(arrays[f"p{i}_bias"]),
                              bias_exp=p["bias_exp"], floor_v=p["floor_v"])
        rec = conns[1] if p["recurrent"] else None
        line = conns[-1] if p.get("bias_line") else None
        pops.append(Population(p["name"], p["size"], lif, conns[0], rec, shape=tuple(p["shape"]), bias_line=line))
    return LoihiNet(tuple(head["input_shape"]), pops, head["time_steps"], head["graded_input"])
