"""The five training methods and the baseline, one module each, keyed by ``TrainConfig.method``.

``METHODS[name]`` is a :class:`~spikeport.train.methods.base.Method`: its layer class, loss,
readout metadata and extra metrics. Equations are in each module's docstring.
"""
from __future__ import annotations

from spikeport.errors import SpikeportError
from spikeport.train.methods.base import Method
from spikeport.train.methods.bpsrm import Bpsrm
from spikeport.train.methods.firate import FiRate
from spikeport.train.methods.hnsg import Hnsg
from spikeport.train.methods.klif import Klif
from spikeport.train.methods.lif import Lif
from spikeport.train.methods.spikeseq import SpikeSeq

METHODS: dict[str, Method] = {m.name: m for m in (Lif(), Klif(), Bpsrm(), SpikeSeq(), Hnsg(), FiRate())}


def get(name: str) -> Method:
    """The method called ``name`` (an error naming the valid ones otherwise)."""
    try:
        return METHODS[name]
    except KeyError:
        raise SpikeportError(f"unknown training method {name!r}; valid: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "get"]
