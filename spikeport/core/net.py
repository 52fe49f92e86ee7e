"""The deployable network: Loihi integer layers read from a ``.nir`` file or a netx file.

Each population is one Lava neuron process: a CUBA LIF (:mod:`spikeport.core.loihi`) or, as Loihi 2
networks from lava-dl use them, a sigma-delta population (:mod:`spikeport.core.sigma_delta`). It is fed
by one feed-forward connection from the previous population (or the input) and optionally by a
recurrent connection from itself. A connection is one
integer linear map (:mod:`spikeport.core.linear`): ``dense`` (int8 ``q`` [out, in]), ``conv`` (int8
``[C_out, C_in/groups, kh, kw]``, torch layout) or ``pool`` (a per-channel sum, no weights), optionally
preceded by a sum pool. Its summed input is what Lava delivers: ``shift(W x, weight_exp)`` for Dense /
Sparse, and the 24-bit wrap of ``W x`` for Lava Conv (which ignores ``weight_exp``).

Loihi 2 additions (netx files): a population's output may be **graded** (integer payloads: sigma-delta
messages; ``message_bits`` is the width netx declares; a LIF with message bits still sends 1 per spike
on Lava); a dense connection may carry per-synapse **delays** (``Connection.delay``: extra steps on top
of the one-step lag, 0..62, Lava's ``DelayDense``); the first population may be an **encoder** fed by the
network input itself, without a synapse: ``encoder="bias"`` (a LIF whose bias mantissa is the sample's
frame, as ``net.in_layer.neuron.bias_mant`` in lava-dl) or ``"a_in"`` (a sigma-delta ``delta`` population
whose input port receives the frames). A non-spiking last population (a LIF whose threshold is out of
reach, or a ``sigma`` population) is a **regression output**: its value per step (v, or the payload) is
the result, not a spike count.

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
from spikeport.core.sigma_delta import SigmaDeltaParams

KINDS = ("dense", "conv", "pool")
ENCODERS = ("bias", "a_in")
MAX_DELAY = 62  # netx clamps synaptic delays to 62 steps (Lava's DelayDense: 6 bits)


@dataclass
class Connection:
    """One integer linear map into a population (see the module docstring).

    ``weight``: dense int8 [out, in]; conv int8 [C_out, C_in/groups, kh, kw]; pool: unused (empty).
    ``in_shape``: one input sample, (C, H, W) for conv / pool / pooled dense, () for a flat dense input.
    ``pool``: a sum pool applied to the input before the weights (kind ``pool``: the whole map).
    ``sparse`` asks for Lava ``Sparse`` (pruned layers: masked-out weights are zero and not stored).
    ``wide``: 16-bit dense weights, two synapses each (module docstring); weight_exp must be 0.
    ``delay``: dense only, int [out, in] extra steps per synapse (0..``MAX_DELAY``), or None.
    ``binary``: Lava's synapse runs with ``num_message_bits = 0`` and reads any nonzero payload as 1 (a
    netx block whose graded source declares no message bits).
    ``native``: weights held as Lava uses them: dense [-256, 255] (a netx file's weights after netx's shift
    and Lava's clip and truncation that are no int8 value times a power of two; Lava's clip and truncation
    leave them as they are), conv int16 with exponent 0 (Lava's Conv takes any integer kernel).
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
    delay: np.ndarray | None = None
    binary: bool = False
    native: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"connection {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.native and (self.kind == "pool" or self.wide or self.pool is not None
                            or (self.kind == "conv" and int(self.weight_exp) != 0)):
            raise ValueError(f"connection {self.name}: native weights are for plain dense maps and unshifted convs")
        if self.wide and (self.kind != "dense" or int(self.weight_exp) != 0):
            raise ValueError(f"connection {self.name}: wide weights are dense with weight_exp 0, got "
                             f"{self.kind} with weight_exp {self.weight_exp}")
        self.stride, self.padding, self.dilation = pair(self.stride), pair(self.padding), pair(self.dilation)
        self.in_shape = tuple(int(s) for s in self.in_shape) or (int(self.weight.shape[1]),)
        if self.kind != "dense" and len(self.in_shape) != 3:
            raise ValueError(f"connection {self.name}: a {self.kind} needs a (C, H, W) input, got {self.in_shape}")
        if self.kind == "pool" and self.pool is None:
            raise ValueError(f"connection {self.name}: a pool connection needs its pool geometry")
        if self.delay is not None:
            d = np.asarray(self.delay)
            if self.kind != "dense" or self.pool is not None or self.wide or d.shape != np.shape(self.weight):
                raise ValueError(f"connection {self.name}: delays need a plain dense map and one delay per weight")
            if d.size and (d.min() < 0 or d.max() > MAX_DELAY or d.dtype.kind not in "iu"):
                raise ValueError(f"connection {self.name}: delays must be integers in [0, {MAX_DELAY}]")

    def delay_groups(self) -> list[tuple[int, "Connection"]]:
        """[(d, the connection restricted to its synapses of delay d)] for every delay d that has a nonzero
        weight; [(0, self)] without delays. Summed inputs add over the groups, each shifted by its own d."""
        import dataclasses

        if self.delay is None:
            return [(0, self)]
        d = np.asarray(self.delay)
        w = np.asarray(self.weight)
        out = [(int(k), dataclasses.replace(self, weight=np.where(d == k, w, 0).astype(w.dtype), delay=None,
                                            name=f"{self.name}.d{int(k)}"))
               for k in np.unique(d[w != 0])]
        return out or [(0, dataclasses.replace(self, delay=None))]

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
        return self.finish(acc, bound)

    def finish(self, acc: np.ndarray, bound: float) -> np.ndarray:
        """Raw integer sums (|acc| <= ``bound``) -> what Lava delivers: Conv's 24-bit wrap; Dense's weight
        exponent, the sum and the result held in int32 (a graded sum can wrap, as Lava's ``dot`` does)."""
        if self.lava_process == "conv":  # Lava's Conv: no exponent (0 here), 24-bit wrap
            if bound >= loihi.INT32_SPAN >> 1 and np.abs(acc).max(initial=0) >= loihi.INT32_SPAN >> 1:
                raise ValueError(f"connection {self.name}: a conv sum reaches 2**31, where Lava's float-to-int32 "
                                 "cast is undefined")
            return acc if bound < loihi.STATE_MAX else loihi.wrap_conv_output(acc)
        if bound * 2.0 ** max(int(self.weight_exp), 0) >= loihi.INT32_SPAN >> 1:
            return loihi.wrap_int32(loihi.shift_exp(loihi.wrap_int32(acc), self.weight_exp))
        return loihi.shift_exp(acc, self.weight_exp)

    def check_loihi(self) -> None:
        """Raise ValueError when the weights Lava would receive do not fit Loihi's 8 bits."""
        w = self.lava_conv()["weight"] if self.lava_process == "conv" else self.to_matrix().data
        lo, hi = (loihi.WIDE_MIN, loihi.WIDE_MAX) if self.wide else (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
        if self.native:
            lo, hi = (loihi.NATIVE_MIN, loihi.NATIVE_MAX) if self.kind == "dense" else (-(1 << 15), (1 << 15) - 1)
        if w.size and (w.min() < lo or w.max() > hi):
            why = " after folding the pool (overlapping pool windows add weights)" if self.pool is not None else ""
            bits = "16 bits as two synapses" if self.wide else "8 bits"
            raise ValueError(f"weights reach {int(np.abs(w).max())}{why}; Loihi has {bits} [{lo}, {hi}]")


@dataclass
class Population:
    """One Loihi neuron population (``size`` neurons) with its incoming connections. ``shape``: the
    population's tensor shape, (C, H, W) after a conv or pool, () for a flat layer.

    Exactly one of ``lif`` (a CUBA LIF) and ``sd`` (a sigma-delta population) is set. ``input`` is None
    for an encoder population (``encoder``: the network input drives it directly, see the module
    docstring). ``message_bits``: the width of its output messages as netx declares it (0: binary)."""

    name: str
    size: int
    lif: loihi.LIFParams | None
    input: Connection | None
    recurrent: Connection | None = None
    shape: tuple[int, ...] = ()
    bias_line: Connection | None = None
    sd: SigmaDeltaParams | None = None
    encoder: str | None = None
    message_bits: int = 0

    def __post_init__(self) -> None:
        if (self.lif is None) == (self.sd is None):
            raise ValueError(f"population {self.name}: give exactly one of a LIF and a sigma-delta neuron")
        if self.bias_line is not None and (self.bias_line.kind != "dense" or self.bias_line.shape != (self.size, 1)):
            raise ValueError(f"population {self.name}: a bias line is a dense [{self.size}, 1] connection, "
                             f"got {self.bias_line.kind} {self.bias_line.shape}")
        if (self.input is None) != (self.encoder is not None):
            raise ValueError(f"population {self.name}: an encoder population has no input connection, "
                             "every other population has one")
        if self.encoder is not None and (self.encoder not in ENCODERS or (self.encoder == "bias") != (self.lif is not None)
                                         or self.recurrent is not None or self.bias_line is not None):
            raise ValueError(f"population {self.name}: encoder {self.encoder!r} must be 'bias' for a LIF or 'a_in' "
                             "for a delta population, without recurrent or bias-line inputs")
        if (self.kind == "delta") != (self.encoder == "a_in"):
            raise ValueError(f"population {self.name}: a delta population is the network's input encoder")

    @property
    def kind(self) -> str:
        """"lif", or the sigma-delta kind ("delta", "sigma_delta", "sigma")."""
        return "lif" if self.sd is None else self.sd.kind

    @property
    def graded(self) -> bool:
        """Its messages carry integer payloads (sigma-delta); a LIF sends 1 per spike."""
        return self.sd is not None

    @property
    def value_output(self) -> bool:
        """A regression output: a ``sigma`` population (its payload is its value) or a LIF that never spikes
        (its voltage v is the value)."""
        return self.kind == "sigma" or (self.lif is not None and not self.lif.spiking)

    def line_current(self) -> np.ndarray:
        """The bias line's summed input per step, int64 [size] (zeros without a bias line)."""
        if self.bias_line is None:
            return np.zeros(self.size, np.int64)
        return self.bias_line.apply(np.ones((1, 1), np.int64))[0]

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        return tuple(self.shape) or (self.size,)

    @property
    def connections(self) -> list[Connection]:
        """Its incoming connections: input, recurrent, bias line (those that exist)."""
        return [c for c in (self.input, self.recurrent, self.bias_line) if c is not None]


@dataclass
class LoihiNet:
    """A network as it runs on Loihi. ``input_shape`` one input sample (flat size ``input_size``);
    ``graded_input``: the network input carries integer values (graded spikes, e.g. direct-encoded pixels
    0..255, or an encoder's frames)."""

    input_shape: tuple[int, ...]
    populations: list[Population]
    time_steps: int
    graded_input: bool
    meta: dict[str, Any] = field(default_factory=dict)
    output: str = "auto"  # "values": read the last LIF population's voltage per step; "auto": value_output

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return self.populations[-1].size

    @property
    def encoder(self) -> str | None:
        """How the input reaches the first population: None (through a connection), "bias" or "a_in"."""
        return self.populations[0].encoder if self.populations else None

    @property
    def regression(self) -> bool:
        """The output is a value per step (a sigma or non-spiking last population), not spikes to count."""
        if not self.populations:
            return False
        last = self.populations[-1]
        return last.value_output or (self.output == "values" and last.lif is not None)

    def lag(self, index: int) -> int:
        """Steps from an input frame to population ``index``: one per connection (an encoder has none)."""
        return index + (0 if self.encoder else 1)

    @property
    def isolated_samples(self) -> bool:
        """True when a Lava run must start every sample from a zeroed network (state outside what Lava's
        LIFReset clears: sigma-delta state, delay buffers, a per-sample encoder bias)."""
        return any(p.sd is not None or p.encoder or any(c.delay is not None for c in p.connections)
                   for p in self.populations)

    def describe(self) -> str:
        """Layer sizes, e.g. ``784-128-10``; spatial layers as CxHxW (``1x28x28-8x28x28-...``)."""
        first_pop = self.populations[0] if self.populations else None
        spatial = first_pop is not None and len(self.input_shape) == 3 and \
            (first_pop.input is None or first_pop.input.kind != "dense")
        first = "x".join(map(str, self.input_shape)) if spatial else str(self.input_size)
        return "-".join([first] + ["x".join(map(str, p.shape)) if p.shape else str(p.size) for p in self.populations])

