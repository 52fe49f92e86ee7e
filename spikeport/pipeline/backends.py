"""Run a deployable network on one backend: the batched emulator, Lava's fixed_pt model (supervised
child process) or lava-dl's netx loader running the run's ``model.net`` on Lava (same supervision),
optionally sharded over worker processes. Outputs per population, [T, B, N]: spikes (bool) or graded
payloads (int32)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError

BACKENDS = ("emulator", "lava", "netx")
SHARDED = ("emulator", "lava")


@dataclass
class BackendRun:
    """Outputs per population [T, B, N] (spikes bool, graded payloads int32), seconds, and a regression
    output's values per step [T, B, N] (None for a classifier)."""

    spikes: list[np.ndarray]
    seconds: float
    values: np.ndarray | None = None

    @property
    def samples_per_s(self) -> float:
        n = self.spikes[-1].shape[1]
        return n / self.seconds if self.seconds > 0 else float("inf")


NETX_MISSING = ("the netx backend needs lava-dl's netx loader (lava.lib.dl.netx), which is not installed: run "
                "`make netx` (lava-dl 0.6.0 without its dependencies; `make demo` and `make test` install it too)")


def netx_installed() -> bool:
    """Whether lava-dl's netx loader can be imported (found without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("lava.lib.dl.netx") is not None
    except ModuleNotFoundError:  # a parent package (lava.lib, lava.lib.dl) is missing
        return False


def parse_backends(spec: str) -> list[str]:
    """``"lava,emulator"`` -> ``["lava", "emulator"]``; an unknown name, or netx without lava-dl, is refused
    (one line naming what to run) before anything is computed."""
    names = [b.strip() for b in spec.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        raise SpikeportError(f"--backend must be one or more of {', '.join(BACKENDS)} (comma-separated), got {spec!r}")
    if "netx" in names and not netx_installed():
        raise SpikeportError(NETX_MISSING)
    return list(dict.fromkeys(names))


def run_backend(net: LoihiNet, x_int: np.ndarray, backend: str, *, record: str = "all",
                timeout_s: float | None = None, shards: int = 1, netx_file: str | Path | None = None,
                cluster: str | None = None, netx_options: dict | None = None) -> BackendRun:
    """Spikes of every population on ``backend`` for x_int [T, B, ...]; ``shards`` > 1 splits the
    samples over that many worker processes and merges the spikes exactly (emulator, Lava);
    ``cluster`` (a Ray address) sends the shards to a Ray cluster instead (one per cluster CPU unless
    ``shards`` > 1). ``netx_file``: the netx export of ``net`` that the ``netx`` backend runs (with
    ``netx_options``: ``spike_exp``, ``message_bits`` of netx's ``Network``)."""
    t0 = time.perf_counter()
    values = None
    if shards < 1:
        raise SpikeportError(f"--shards must be at least 1, got {shards}")
    if net.regression and (cluster or (shards > 1 and backend in SHARDED)):
        raise SpikeportError("a regression network (values per step) runs unsharded: drop --shards / --cluster")
    if cluster:
        from spikeport.deploy.cluster import run_on_cluster

        spikes = run_on_cluster(net, x_int, backend, cluster, shards=shards if shards > 1 else None,
                                record=record, timeout_s=timeout_s or 1800.0)
    elif shards > 1 and backend in SHARDED:
        from spikeport.deploy.shards import run_sharded

        spikes = run_sharded(net, x_int, backend, shards, record=record, timeout_s=timeout_s or 1800.0)
    elif backend == "emulator":
        res = emulator.run(net, x_int)
        spikes, values = res.spikes, res.values
        if record == "output":
            spikes = spikes[-1:]
    elif backend == "lava":
        from spikeport.deploy.supervise import DEFAULT_TIMEOUT_S, run_lava

        spikes, values = run_lava(net, x_int, record=record, timeout_s=timeout_s or DEFAULT_TIMEOUT_S, with_values=True)
    elif backend == "netx":
        from spikeport.deploy.supervise import DEFAULT_TIMEOUT_S, run_netx

        if netx_file is None:
            raise SpikeportError("the netx backend runs a netx file: export one with `spikeport export RUN --netx`")
        spikes, values = run_netx(netx_file, x_int, timeout_s=timeout_s or DEFAULT_TIMEOUT_S, with_values=True,
                                  **(netx_options or {}))
        if record == "output":
            spikes = spikes[-1:]
    else:
        raise SpikeportError(f"unknown backend {backend!r}")
    return BackendRun(spikes=[np.asarray(s) for s in spikes], seconds=time.perf_counter() - t0, values=values)
