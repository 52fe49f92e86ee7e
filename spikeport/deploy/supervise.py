"""Run Lava in a supervised child process: a timeout, a heartbeat, a clean kill of the whole process
group, and a clear error instead of a hung terminal.

The child is a fresh interpreter (``python -m spikeport.deploy.lava_child``) in a new session, so
Lava's forked process models inherit no torch state and every process Lava starts belongs to a
group the parent can kill. Network and inputs travel as ``.npz`` files (no pickle); the child
writes its spikes to ``spikes.npz`` and touches a heartbeat file while it works. Whatever happens,
the parent kills the group and reaps the child before returning.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.netio import save_arrays
from spikeport.errors import SpikeportError

DEFAULT_TIMEOUT_S = 1800.0
HEARTBEAT_TIMEOUT_S = 120.0  # Lava's build step can be silent for a while on big nets
CHILD = ("-m", "spikeport.deploy.lava_child")  # the child's interpreter arguments; work folder and record follow
NETX_FILE = "model.net"  # a netx file in the work folder makes the child run it with lava-dl


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_lava(net: LoihiNet, x: np.ndarray, *, record: str = "all", timeout_s: float = DEFAULT_TIMEOUT_S,
             heartbeat_s: float = HEARTBEAT_TIMEOUT_S, with_values: bool = False):
    """Run ``x`` [T, B, input_size] on Lava fixed_pt in a child process (:data:`CHILD`); returns outputs per
    recorded population, [T, B, N] (spikes bool, sigma-delta payloads int32), and with ``with_values``
    (outputs, the regression output's values [T, B, N] int64 or None)."""
    out = _run_child(lambda tmpd: np.savez(tmpd / "net.npz", **save_arrays(net)), x, record, timeout_s, heartbeat_s)
    return out if with_values else out[0]


def run_netx(path: str | os.PathLike, x: np.ndarray, *, timeout_s: float = DEFAULT_TIMEOUT_S,
             heartbeat_s: float = HEARTBEAT_TIMEOUT_S, spike_exp: int | None = None,
             message_bits: int | None = None, output: str | None = None, with_values: bool = False):
    """Run ``x`` [T, B, ...] through a netx HDF5 file with lava-dl's loader on Lava fixed_pt, in the same
    supervised child (``deploy.netx_backend``); returns outputs per block, [T, B, N], aligned to the
    sample windows (and the regression values with ``with_values``, as :func:`run_lava`).
    ``spike_exp``, ``message_bits``: netx's ``Network`` arguments (defaults: netx's and the file's);
    ``output``: the last block's spikes or values (``nirfmt.netx_net.read``)."""
    import json
    import shutil

    def put(tmpd: Path) -> None:
        shutil.copyfile(path, tmpd / NETX_FILE)
        (tmpd / "options.json").write_text(json.dumps({"spike_exp": spike_exp, "message_bits": message_bits,
                                                       "output": output}))

    out = _run_child(put, x, "all", timeout_s, heartbeat_s)
    return out if with_values else out[0]


def _run_child(put_net, x: np.ndarray, record: str, timeout_s: float, heartbeat_s: float):
    """Write the network (``put_net(folder)``) and x into a work folder, run the child (:data:`CHILD`) on it."""
    with tempfile.TemporaryDirectory(prefix="spikeport-lava-") as tmp:
        tmpd = Path(tmp)
        put_net(tmpd)
        np.save(tmpd / "x.npy", np.ascontiguousarray(x))
        cmd = [sys.executable, *CHILD, str(tmpd), record]
        with open(tmpd / "stderr.txt", "wb") as err_fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_fh,
                                    start_new_session=True)
            try:
                _wait(proc, tmpd / "heartbeat", timeout_s, heartbeat_s)
            finally:
                _kill_group(proc)
        out_path = tmpd / "spikes.npz"
        if proc.returncode != 0 or not out_path.exists():
            detail = (tmpd / "error.txt").read_text().strip() if (tmpd / "error.txt").exists() else \
                _exit_reason(proc.returncode)
            raise SpikeportError(f"Lava run failed: {detail.splitlines()[0] if detail else 'no detail'}")
        with np.load(out_path, allow_pickle=False) as data:
            n = len([k for k in data.files if k.startswith("s")])
            return [data[f"s{i}"] for i in range(n)], (data["values"] if "values" in data.files else None)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"the Lava child process was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"the Lava child process exited with code {code}"


def _wait(proc: subprocess.Popen, heartbeat: Path, timeout_s: float, heartbeat_s: float) -> None:
    start, started_at = time.monotonic(), time.time()
    while proc.poll() is None:
        now = time.monotonic()
        if now - start > timeout_s:
            raise SpikeportError(f"Lava did not finish within {timeout_s:.0f} s; the simulation was stopped")
        try:
            beat = heartbeat.stat().st_mtime
        except FileNotFoundError:  # not started yet: count from the launch
            beat = started_at
        if time.time() - beat > heartbeat_s:
            raise SpikeportError(f"Lava stopped responding (no heartbeat for {heartbeat_s:.0f} s); "
                                 "the simulation was stopped")
        time.sleep(0.05)
