"""Run a deployable network on one backend: the batched emulator or Lava's fixed_pt model (supervised
child process), optionally sharded over worker processes. Spikes per population, [T, B, N] bool."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError

BACKENDS = ("emulator", "lava")


@dataclass
class BackendRun:
    spikes: list[np.ndarray]
    seconds: float

    @property
    def samples_per_s(self) -> float:
        n = self.spikes[-1].shape[1]
        return n / self.seconds if self.seconds > 0 else float("inf")


def parse_backends(spec: str) -> list[str]:
    names = [b.strip() for b in spec.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        raise SpikeportError(f"--backend must be one or more of {', '.join(BACKENDS)} (comma-separated), got {spec!r}")
    return list(dict.fromkeys(names))


def run_backend(net: LoihiNet, x_int: np.ndarray, backend: str, *, record: str = "all",
                timeout_s: float | None = None, shards: int = 1) -> BackendRun:
    """Spikes of every population on ``backend`` for x_int [T, B, ...]; ``shards`` > 1 splits the
    samples over that many worker processes and merges the spikes exactly."""
    t0 = time.perf_counter()
    if shards < 1:
        raise SpikeportError(f"--shards must be at least 1, got {shards}")
    if shards > 1 and backend in BACKENDS:
        from spikeport.deploy.shards import run_sharded

        spikes = run_sharded(net, x_int, backend, shards, record=record, timeout_s=timeout_s or 1800.0)
    elif backend == "emulator":
        spikes = emulator.run(net, x_int).spikes
        if record == "output":
            spikes = spikes[-1:]
    elif backend == "lava":
        from spikeport.deploy.supervise import DEFAULT_TIMEOUT_S, run_lava

        spikes = run_lava(net, x_int, record=record, timeout_s=timeout_s or DEFAULT_TIMEOUT_S)
    else:
        raise SpikeportError(f"unknown backend {backend!r}")
    return BackendRun(spikes=[np.asarray(s, bool) for s in spikes], seconds=time.perf_counter() - t0)
