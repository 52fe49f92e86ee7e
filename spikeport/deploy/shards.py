"""Split a test set over N worker processes and merge the spikes exactly.

Samples are independent (state is reset at every sample window), so running contiguous slices of
the batch in separate workers and concatenating along the batch axis gives the same spikes as one
run. Lava shards are separate supervised Lava children; emulator shards run in spawned processes.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.deploy import emulator


def split(x: np.ndarray, shards: int) -> list[np.ndarray]:
    """Contiguous slices of x [T, B, ...] along B (no empty slices)."""
    bounds = np.linspace(0, x.shape[1], min(shards, x.shape[1]) + 1).astype(int)
    return [x[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def merge(parts: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Concatenate per-shard spike lists ([T, b_i, N] per layer) along the batch axis."""
    return [np.concatenate(layer, axis=1) for layer in zip(*parts)]


def _emulate(net: LoihiNet, x: np.ndarray, record: str) -> list[np.ndarray]:
    spikes = emulator.run(net, x).spikes
    return spikes[-1:] if record == "output" else spikes


def run_sharded(net: LoihiNet, x: np.ndarray, backend: str, shards: int, *, record: str = "all",
                timeout_s: float = 1800.0) -> list[np.ndarray]:
    """Spikes of ``backend`` on x [T, B, ...] computed in ``shards`` parallel workers, merged."""
    parts = split(x, shards)
    if backend == "lava":
        from spikeport.deploy.supervise import run_lava

        with ThreadPoolExecutor(len(parts)) as pool:  # each thread supervises its own Lava child
            futures = [pool.submit(run_lava, net, p, record=record, timeout_s=timeout_s) for p in parts]
            return merge([f.result() for f in futures])
    with ProcessPoolExecutor(len(parts), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_emulate, net, p, record) for p in parts]
        return merge([f.result() for f in futures])
