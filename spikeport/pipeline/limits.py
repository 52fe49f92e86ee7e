"""Memory and step budgets, checked before a network runs.

A run of ``B`` samples of ``T`` steps holds, besides the encoded inputs ``[T, B, n_in]``:

- emulator: every population's spikes ``[T, B, N]`` (bool, twice while chunks are joined) and, per
  internal chunk (``emulator.CHUNK_ELEMENTS``), int64 input currents and their products;
- reference (the checkpoint's integer torch forward, parity only): the input as int64 and float64,
  per layer float64 / int64 currents ``[T, B, N]`` and the float forward's float32 copies;
- Lava: the input stream (int32, about three copies between parent, child and the RingBuffer model),
  each recorded population's bit-packed and unpacked record ``[steps, N]`` with ``steps = B*T + L + 1``,
  and a fixed cost per Lava process (``2 L + 4`` processes).

These estimates are deliberately rough (within a factor of about 2); they decide the chunk of samples
a stage processes at once (memory then stays flat however many samples run) and refuse, with the
estimate, a network whose single sample already exceeds the budget. The budget is
``--max-memory-gb`` / ``SPIKEPORT_MAX_MEMORY_GB``, default 80% of the memory available now. The
step budget (``--max-steps``, default 10**8) bounds samples x time steps of one command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from spikeport.errors import SpikeportError

GIB = 1 << 30
MEMORY_ENV = "SPIKEPORT_MAX_MEMORY_GB"
DEFAULT_MAX_STEPS = 10**8  # samples x time steps per command (Lava streams ~600 steps/s)
LAVA_PROCESS_BYTES = 100 << 20  # resident memory of one Lava process (interpreter, numpy, lava)
CHUNK_CAP = {"emulator": 1000, "lava": 2000, "netx": 2000, "reference": 1000}  # samples per chunk, at most


@dataclass(frozen=True)
class Budget:
    """``max_memory_bytes`` for one command's arrays; ``max_steps`` simulated samples x steps."""

    max_memory_bytes: int
    max_steps: int = DEFAULT_MAX_STEPS

    @classmethod
    def make(cls, max_memory_gb: float | None = None, max_steps: int | None = None) -> "Budget":
        if max_memory_gb is None and os.environ.get(MEMORY_ENV):
            try:
                max_memory_gb = float(os.environ[MEMORY_ENV])
            except ValueError:
                raise SpikeportError(f"{MEMORY_ENV} must be a number of GiB, got {os.environ[MEMORY_ENV]!r}") from None
        if max_memory_gb is not None and not (np.isfinite(max_memory_gb) and max_memory_gb > 0):
            raise SpikeportError(f"--max-memory-gb must be a positive number, got {max_memory_gb!r}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise SpikeportError(f"--max-steps must be a positive integer, got {max_steps!r}")
        mem = int(max_memory_gb * GIB) if max_memory_gb is not None else int(0.8 * available_memory_bytes())
        return cls(max_memory_bytes=mem, max_steps=max_steps or DEFAULT_MAX_STEPS)


def size(nbytes: float) -> str:
    """Bytes as KiB / MiB / GiB with three significant digits."""
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} B"


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); 8 GiB where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 * GIB


def _sizes(net) -> tuple[int, int, int, int]:
    """(T, inputs, neurons of all populations (a graded population's int32 payloads count 4 times a
    spike's byte), widest population or input)."""
    sizes = [int(p.size) for p in net.populations]
    held = sum(int(p.size) * (4 if getattr(p, "graded", False) else 1) for p in net.populations)
    return int(net.time_steps), int(net.input_size), held, max([int(net.input_size)] + sizes)


def input_bytes(net, samples: int) -> int:
    """The encoded inputs [T, B, n_in] (int16), held for the whole command."""
    T, n_in, _, _ = _sizes(net)
    return T * samples * n_in * 2


def emulator_bytes(net, samples: int, record_states: bool = False) -> int:
    from spikeport.deploy.emulator import CHUNK_ELEMENTS

    T, n_in, total, widest = _sizes(net)
    inner = min(samples * T * widest, max(CHUNK_ELEMENTS, T * widest)) * 8 * 4
    per = T * (n_in * 2 + 2 * total + (32 * total if record_states else 0))
    return inner + samples * per


def reference_bytes(net, samples: int) -> int:
    T, n_in, total, widest = _sizes(net)
    return samples * T * (n_in * 20 + widest * 36 + total * 5)


def lava_bytes(net, samples: int) -> int:
    T, n_in, total, _ = _sizes(net)
    fixed = (2 * len(net.populations) + 4) * LAVA_PROCESS_BYTES
    if getattr(net, "isolated_samples", False):  # one segment of lag + T steps per sample
        T += net.lag(len(net.populations) - 1)
    return fixed + samples * T * (n_in * 20 + total * 4)


ESTIMATES = {"emulator": emulator_bytes, "lava": lava_bytes, "netx": lava_bytes, "reference": reference_bytes}


def estimate(net, samples: int, parts: list[str]) -> int:
    """Bytes for ``samples`` samples through every part at once (plus the inputs)."""
    return input_bytes(net, samples) + sum(ESTIMATES[p](net, samples) for p in parts)


def plan_chunk(net, samples: int, parts: list[str], budget: Budget, what: str = "run") -> int:
    """Samples per chunk so that the inputs plus one chunk through every part (run one after another)
    fit the budget; raises with the estimate when even one sample does not, or when samples x steps
    exceed the step budget."""
    T = int(net.time_steps)
    if samples * T > budget.max_steps:
        raise SpikeportError(f"{what}: {samples} samples x {T} steps = {samples * T} simulated steps, more than "
                             f"the step budget {budget.max_steps} (--max-steps); use fewer --samples")
    held = input_bytes(net, samples)
    need_one = held + max(ESTIMATES[p](net, 1) for p in parts)
    if need_one > budget.max_memory_bytes:
        raise SpikeportError(
            f"{what}: network {net.describe()} with T={T} needs an estimated {size(need_one)} "
            f"(inputs of {samples} samples {size(held)} + one sample through "
            f"{' / '.join(parts)}), more than the memory budget {size(budget.max_memory_bytes)} "
            f"(--max-memory-gb or {MEMORY_ENV}); use fewer --samples or a smaller network")
    chunk = min(samples, min(CHUNK_CAP[p] for p in parts))
    while chunk > 1 and held + max(ESTIMATES[p](net, chunk) for p in parts) > budget.max_memory_bytes:
        chunk //= 2
    return max(1, chunk)


def check_whole(net, samples: int, parts: list[str], budget: Budget, what: str = "run") -> None:
    """For stages that need every sample at once (energy's operation counts): refuse, with the
    estimate, when it exceeds the budget."""
    plan_chunk(net, samples, parts, budget, what)
    need = estimate(net, samples, parts)
    if need > budget.max_memory_bytes:
        raise SpikeportError(f"{what}: {samples} samples through {net.describe()} (T={net.time_steps}) need an "
                             f"estimated {size(need)}, more than the memory budget "
                             f"{size(budget.max_memory_bytes)} (--max-memory-gb or {MEMORY_ENV}); "
                             f"use fewer --samples")
