"""Class prediction from output spikes (numpy only), selected by the graph's ``readout`` metadata."""
from __future__ import annotations

import numpy as np


def predict(output_spikes: np.ndarray, meta: dict) -> np.ndarray:
    """output_spikes [T, B, N] bool -> predicted class [B] int.

    ``spike_count``: argmax of spike counts over the sample; ties go to the lowest index.
    """
    readout = meta.get("readout", "spike_count")
    if isinstance(readout, bytes):
        readout = readout.decode()
    if readout == "spike_count":
        return np.asarray(output_spikes).sum(axis=0).argmax(axis=1)
    raise ValueError(f"unknown readout {readout!r}")
