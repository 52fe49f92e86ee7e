"""Run Lava in a supervised child process: a timeout, a clean kill of the whole process group, and
a clear error instead of a hung terminal.

The child is started with the ``spawn`` method (a fresh interpreter: no torch state inherited by
Lava's forked process models), makes itself a process-group leader, runs the network and writes
its spikes to a temporary ``.npz`` (read back with ``allow_pickle=False``). Whatever happens, the
parent kills the group and reaps the child before returning.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from spikeport.deploy.netdef import LoihiNet
from spikeport.errors import SpikeportError

DEFAULT_TIMEOUT_S = 1800.0


def _child(net: LoihiNet, x: np.ndarray, record: str, out_path: str, err_path: str, fault: str) -> None:
    os.setsid()
    try:
        if fault == "hang":
            time.sleep(10**6)
        if fault == "raise":
            raise RuntimeError("injected failure inside the Lava child")
        from spikeport.deploy import lava_backend

        spikes = lava_backend.run_network(net, x, record=record)
        np.savez(out_path, **{f"s{i}": s for i, s in enumerate(spikes)})
    except BaseException as err:  # reported to the parent as one line
        Path(err_path).write_text(f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        os._exit(3)
    os._exit(0)


def _kill_group(proc: mp.Process) -> None:
    if proc.pid is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.is_alive():
        proc.kill()
    proc.join(timeout=10)


def run_lava(net: LoihiNet, x: np.ndarray, *, record: str = "all", timeout_s: float = DEFAULT_TIMEOUT_S,
             fault: str = "") -> list[np.ndarray]:
    """Run ``x`` [T, B, input_size] on Lava fixed_pt in a child process; returns spikes per recorded
    population, [T, B, N] bool. ``fault`` ("hang" or "raise") injects a failure for tests."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="spikeport-lava-") as tmp:
        out_path, err_path = os.path.join(tmp, "spikes.npz"), os.path.join(tmp, "error.txt")
        proc = ctx.Process(target=_child, args=(net, x, record, out_path, err_path, fault), daemon=False)
        proc.start()
        try:
            proc.join(timeout=timeout_s)
            if proc.is_alive():
                raise SpikeportError(f"Lava did not finish within {timeout_s:.0f} s; the simulation was stopped")
        finally:
            _kill_group(proc)
        if proc.exitcode != 0 or not os.path.exists(out_path):
            detail = Path(err_path).read_text().splitlines()[0] if os.path.exists(err_path) else \
                f"child exited with code {proc.exitcode}"
            raise SpikeportError(f"Lava run failed: {detail}")
        with np.load(out_path, allow_pickle=False) as data:
            return [data[f"s{i}"] for i in range(len(data.files))]
