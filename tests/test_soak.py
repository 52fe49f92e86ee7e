"""Soak (slow): parity over 10,000 Fashion-MNIST test samples on the emulator and 2,000 on Lava, with
memory sampled throughout. Chunked runs (``spikeport.pipeline.streaming``) must keep it flat: after the first
chunk, resident memory may not grow by more than 10%. The figures are printed (run with ``-s``) and
written to ``soak.json`` in the test's run folder."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from spikeport.deploy import supervise
from spikeport.pipeline import limits
from tests.conftest import need_fashion_mnist
from tests.test_supervise import _proc_stat, session_members

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _fashion_mnist():
    need_fashion_mnist()
MB = 1 << 20


def rss(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Sampler:
    """Samples the resident memory of this process plus every Lava child session every ``dt`` s."""

    def __init__(self, children: list, dt: float = 0.25):
        self.children, self.dt, self.samples, self._stop = children, dt, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.wait(self.dt):
            child = sum(rss(p) for c in list(self.children) if _proc_stat(c.pid) for p in session_members(c.pid))
            self.samples.append((time.monotonic() - t0, rss(os.getpid()), child))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self, chunk_starts: list[float]) -> dict:
        """Memory (MB, this process + Lava children) at the first and last sample and its peak; the peak
        until the second chunk starts (the first chunk done: warm) vs the peak after it (``growth``);
        the peak of each chunk."""
        total = [(t, a + b) for t, a, b in self.samples]
        cut = chunk_starts[1] if len(chunk_starts) > 1 else total[-1][0] / 2
        warm = max(v for t, v in total if t <= cut)
        later = max(v for t, v in total if t > cut)
        bounds = chunk_starts + [float("inf")]
        per_chunk = [round(max([v for t, v in total if a <= t < b] or [0]) / MB) for a, b in zip(bounds, bounds[1:])]
        return {"samples": len(total), "start_mb": round(total[0][1] / MB, 1), "end_mb": round(total[-1][1] / MB, 1),
                "peak_mb": round(max(v for _, v in total) / MB, 1),
                "warm_mb": round(warm / MB, 1), "peak_after_mb": round(later / MB, 1),
                "growth": round(later / warm - 1.0, 4), "per_chunk_peak_mb": per_chunk,
                "parent_peak_mb": round(max(a for _, a, _ in self.samples) / MB, 1),
                "lava_peak_mb": round(max(b for _, _, b in self.samples) / MB, 1)}


@pytest.fixture(scope="module")
def fmnist_run(tmp_path_factory) -> Path:
    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    run = tmp_path_factory.mktemp("soak")
    train(TrainConfig(data="fashion-mnist", epochs=1, hidden=[64], time_steps=8, limit=3000), run)
    export_run(run)
    return run


@pytest.fixture
def lava_children(monkeypatch):
    started = []

    class Recorder(supervise.subprocess.Popen):
        def __init__(self, args, *rest, **kw):
            super().__init__(args, *rest, **kw)
            if "spikeport.deploy.lava_child" in list(args):
                started.append(self)

    monkeypatch.setattr(supervise.subprocess, "Popen", Recorder)
    return started


@pytest.mark.parametrize("backend, samples, chunk", [("emulator", 10_000, 1000), ("lava", 2000, 500)])
def test_soak_parity_memory_stays_flat(fmnist_run, lava_children, monkeypatch, backend, samples, chunk):
    from spikeport import pipeline as workflow
    from spikeport.pipeline.reference import CheckpointReference

    monkeypatch.setitem(limits.CHUNK_CAP, backend, chunk)
    monkeypatch.setitem(limits.CHUNK_CAP, "reference", chunk)
    starts, reference = [], CheckpointReference.run

    def timed_reference(*args, **kwargs):  # called first in every chunk: its start time marks the chunk
        starts.append(time.monotonic() - t0)
        return reference(*args, **kwargs)

    monkeypatch.setattr(CheckpointReference, "run", timed_reference)
    t0 = time.monotonic()
    with Sampler(lava_children) as sampler:
        res = workflow.parity(fmnist_run, backend=backend, samples=samples, out=fmnist_run / f"parity-{backend}.json")
    seconds = time.monotonic() - t0
    mem = sampler.summary(starts)
    figures = {"backend": backend, "samples": res["samples"], "chunk": res["chunk_samples"],
               "spike_mismatches": res["spike_mismatches"], "seconds": round(seconds, 1),
               "samples_per_s": res["samples_per_s"], "memory": mem}
    print(json.dumps(figures))
    with open(fmnist_run / "soak.json", "a") as fh:  # a test log, not a spikeport output
        fh.write(json.dumps(figures) + "\n")
    assert res["samples"] == samples and res["spike_mismatches"] == 0
    assert mem["growth"] <= 0.10, mem
    if backend == "lava":
        assert len(lava_children) == samples // chunk
        assert all(p.returncode is not None and not session_members(p.pid) for p in lava_children)
