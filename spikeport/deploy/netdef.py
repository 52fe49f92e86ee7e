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
