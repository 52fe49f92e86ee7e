"""Choose the fastest of equivalent computations by timing them on this machine, once per shape.

Where two code paths compute the same thing (the spike-input kernel and the dense GEMM in training,
``train.spike_input``) which one is faster depends on the CPU, the thread count, the library
versions and the shape, so constants set on one machine mislead on another. :class:`Chooser` runs
each candidate a few times, interleaved (``WARMUP`` untimed calls each, then ``REPS`` timed rounds,
the order rotating so none always runs first), and keeps the one with the lowest best time (the
minimum over the rounds: what the code costs, not what another job on a shared machine happened to
take from it at that moment; with one thread the time is the process's CPU time, which a busy
machine does not inflate, with several it is wall time: :func:`default_timer`); the first candidate (the reference, e.g. the dense product) is kept
unless another is faster by more than ``MARGIN``, so a noisy tie never picks the less proven path.

The choice is cached per machine and key: in memory for the process, and in
``$XDG_CACHE_HOME/spikeport/fastest.json`` (``~/.cache/...``), so the next run on this machine takes
the same path without timing again (a resumed training takes the path it took before). The machine
part of the key names the CPU, its logical CPUs, the versions of torch and numba and torch's thread
count: a change of any of them times again. An unreadable or corrupt cache file is ignored (timed
again); writes are atomic (``fileio``). The timer is an argument, so tests decide which path wins.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

from spikeport.files import fileio

CACHE_FILE = "fastest.json"
WARMUP = 2  # untimed calls of each candidate first (numba's JIT or cache load, allocator warm-up)
REPS = 5  # timed rounds; each round runs every candidate once
# another candidate replaces the first only when its best time is at least 15 % lower: a layer timed alone
# flatters the kernel (benchmarks/train_speed.py, 1 thread, load average 13-16: the first layer timed 8 % faster
# with the kernel, 41.8 vs 38.6 ms CPU, yet the training step took 63.5 vs 56.7 CPU ms with it)
MARGIN = 0.15


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spikeport" / CACHE_FILE


def machine() -> str:
    """What the timings depend on besides the shape and the thread count: CPU model, logical CPUs, versions."""
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in ("torch", "numba"):
        try:
            versions.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            versions.append(f"{name} none")
    return f"{cpu}, {os.cpu_count()} CPUs, {', '.join(versions)}"


def threads() -> int:
    """torch's thread count where torch is in use (never imported here), else 1."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else 1


def default_timer() -> Callable[[], float]:
    """Process CPU time with one thread (what the path costs on an idle core: another job taking the core
    does not inflate it), wall time with several (what running on them in parallel saves)."""
    return time.process_time if threads() == 1 else time.perf_counter


class Chooser:
    """``choose(key, candidates)`` -> the name of the fastest candidate for ``key`` on this machine.

    ``path``: the cache file (None: memory only); ``timer``: seconds (default :func:`default_timer`);
    ``machine_id``: the machine part of the key (default :func:`machine`, read once; the thread count
    is added at every call)."""

    def __init__(self, path: Path | None = None, timer: Callable[[], float] | None = None,
                 machine_id: str | None = None, warmup: int = WARMUP, reps: int = REPS):
        self.path, self.timer, self.warmup, self.reps = path, timer, warmup, reps
        self._machine = machine_id
        self._memo: dict[str, str] = {}
        self.timings: dict[str, dict[str, float]] = {}  # key -> candidate -> best seconds (measured here)

    def choices(self) -> dict[str, str]:
        """key -> candidate, for every key this chooser answered (from memory, the file or a timing)."""
        return {full.split(" | ", 1)[1]: name for full, name in self._memo.items()}

    def full_key(self, key: str) -> str:
        if self._machine is None:
            self._machine = machine()
        return f"{self._machine}, {threads()} threads | {key}"

    def known(self, key: str, names) -> str | None:
        """The candidate already chosen for ``key`` (remembered, or read from the cache file) if it is one of
        ``names``, else None: nothing is timed."""
        full = self.full_key(key)
        if self._memo.get(full) in names:
            return self._memo[full]
        entry = self._read().get(full)
        stored = entry.get("choice") if isinstance(entry, dict) else None
        if stored in names:
            self._memo[full] = stored
            return stored
        return None

    def choose(self, key: str, candidates: dict[str, Callable[[], object]]) -> str:
        """The candidate to use for ``key``: remembered, else read from the cache file, else timed (and
        stored). ``candidates``: name -> a call running the computation once; the first is the reference."""
        known = self.known(key, candidates)
        if known is not None:
            return known
        full = self.full_key(key)
        times = self.measure(candidates)
        first = next(iter(candidates))
        best = min(times, key=times.get)
        if times[best] > (1.0 - MARGIN) * times[first]:
            best = first
        self._memo[full], self.timings[key] = best, times
        self._write(full, {"choice": best, "best_ms": {k: round(v * 1e3, 4) for k, v in times.items()}})
        return best

    def measure(self, candidates: dict[str, Callable[[], object]]) -> dict[str, float]:
        """Best seconds per call of every candidate (minimum over interleaved, rotating rounds)."""
        names, timer = list(candidates), self.timer or default_timer()
        for name in names:
            for _ in range(self.warmup):
                candidates[name]()
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(self.reps):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t0 = timer()
                candidates[name]()
                times[name].append(timer() - t0)
        return {n: min(t) for n, t in times.items()}

    def _read(self) -> dict:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, full: str, entry: dict) -> None:
        if self.path is None:
            return
        try:
            fileio.write_json(self.path, {**self._read(), full: entry})
        except OSError:  # a read-only cache folder: the choice still holds for this process
            pass
