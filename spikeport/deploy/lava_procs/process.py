"""A Dense connection whose one-step output buffer is cleared when a sample window begins.

A recurrent connection delays by one step, so the first step of sample n would receive the last
spikes of sample n-1. Clearing the buffer at the window boundary keeps streamed samples independent,
exactly like running each sample from a fresh state.
"""
from lava.proc.dense.process import Dense


class WindowedDense(Dense):
    """``Dense`` plus ``reset_interval`` and ``reset_offset`` (Lava steps) for the buffer clear."""

    def __init__(self, *, reset_interval: int, reset_offset: int, **kwargs):
        super().__init__(**kwargs)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset) % int(reset_interval)
