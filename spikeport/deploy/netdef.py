"""The deployable network: Loihi integer layers read from a ``.nir`` file.

Each population is one Lava LIF process. It is fed by one feed-forward connection from the previous
population (or the input) and optionally by a recurrent connection from itself. Connections carry
int8 weights ``q`` [out, in] and a weight exponent; the summed input is ``shift(q @ x, weight_exp)``.

Time: each sample runs ``time_steps`` steps per population; within a sample, population l at step t
receives population l-1's spikes of step t (Lava's one-step connection lag is absorbed by streaming
alignment, see ``lava_backend``) and its own spikes of step t-1 through the recurrent connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikeport.core import loihi


@dataclass
class Connection:
    """int8 weights [out, in]; ``sparse`` asks for Lava ``Sparse`` (pruned layers); ``mask`` [out, in]
    bool marks the synapses that exist (None: all)."""

    name: str
    weight: np.ndarray
    weight_exp: int
    sparse: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]

    def weight_t(self) -> np.ndarray:
        """[in, out] int64 for batched products."""
        return np.ascontiguousarray(self.weight.T.astype(np.int64))


@dataclass
class Population:
    """One Loihi LIF population (``size`` neurons) with its incoming connections."""

    name: str
    size: int
    lif: loihi.LIFParams
    input: Connection
    recurrent: Connection | None = None


@dataclass
class LoihiNet:
    """A network as it runs on Loihi. ``input_size`` flat inputs; ``graded_input``: the first
    connection receives integer-valued (graded) spikes, e.g. direct-encoded pixels 0..255."""

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
        sizes = [str(self.input_size)] + [str(p.size) for p in self.populations]
        return "-".join(sizes)


def save_arrays(net: LoihiNet) -> dict[str, np.ndarray]:
    """The network as plain arrays (for a child process; read back with :func:`load_arrays`, no pickle)."""
    import json

    out: dict[str, np.ndarray] = {}
    head = {"input_shape": list(net.input_shape), "time_steps": int(net.time_steps),
            "graded_input": bool(net.graded_input), "populations": []}
    for i, p in enumerate(net.populations):
        head["populations"].append({
            "name": p.name, "size": int(p.size), "du": int(p.lif.du), "dv": int(p.lif.dv), "vth": int(p.lif.vth),
            "bias_exp": int(p.lif.bias_exp), "recurrent": p.recurrent is not None,
            "conns": [{"name": c.name, "weight_exp": int(c.weight_exp), "sparse": bool(c.sparse)}
                      for c in (p.input, p.recurrent) if c is not None]})
        out[f"p{i}_bias"] = np.broadcast_to(np.asarray(p.lif.bias_mant, np.int64), (p.size,)).copy()
        out[f"p{i}_w0"] = p.input.weight
        if p.recurrent is not None:
            out[f"p{i}_w1"] = p.recurrent.weight
    out["header"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    return out


def load_arrays(arrays) -> LoihiNet:
    import json

    head = json.loads(bytes(np.asarray(arrays["header"], dtype=np.uint8)).decode())
    pops = []
    for i, p in enumerate(head["populations"]):
        conns = [Connection(c["name"], np.asarray(arrays[f"p{i}_w{j}"]), c["weight_exp"], c["sparse"])
                 for j, c in enumerate(p["conns"])]
        lif = loihi.LIFParams(du=p["du"], dv=p["dv"], vth=p["vth"], bias_mant=np.asarray(arrays[f"p{i}_bias"]),
                              bias_exp=p["bias_exp"])
        pops.append(Population(p["name"], p["size"], lif, conns[0], conns[1] if p["recurrent"] else None))
    return LoihiNet(tuple(head["input_shape"]), pops, head["time_steps"], head["graded_input"])
