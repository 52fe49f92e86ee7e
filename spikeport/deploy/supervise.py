"""Run Lava in a supervised child process: a timeout, a heartbeat, a clean kill of the whole process
group, and a clear error instead of a hung terminal.

The child is a fresh interpreter (``python -m spikeport.deploy.lava_child``) in a new session, so
Lava's forked process models inherit no torch state and every process Lava starts belongs to a
group the parent can kill. Network and inputs travel as ``.npz`` files (no pickle); the child
writes its spikes to ``spikes.npz`` and touches a heartbeat file while it works. Whatever happens,
the parent kills the group and reaps the child before returning.

How a run can end (a parity gate must never read a Lava failure as a result):

- spikes: returned;
- an error while building or running the network that is not a runtime failure (netx refusing a
  block, a ``SpikeportError``, ...: the child exits :data:`BAD_INPUT_EXIT` with the message):
  ``SpikeportError`` "Lava run failed: ..." (the CLI's exit 2), not retried: it would fail the same way;
- a Lava runtime failure (one of Lava's process models raised or died, the child died, a pipe broke:
  ``EOFError: Ran out of input`` and the like, ``lava_child.RUNTIME_FAILURES``): retried once in a
  fresh child (:data:`RETRIES`, with a ``RuntimeWarning``); if that
  fails too, :class:`~spikeport.errors.LavaRuntimeError` (exit 3) whose one line names the saved log of
  both children (their error, traceback and stderr);
- the time limit reached: ``SpikeportError`` (exit 2: the user's limit; ``timeout_s`` bounds the whole
  run, a retry included), not retried: a retry could only exceed the bound the user set;
- no heartbeat for ``heartbeat_s``: the child's interpreter froze (the heartbeat thread needs nothing
  but the interpreter): a Lava runtime failure (exit 3, log saved), not retried: it already cost
  ``heartbeat_s`` (120 s by default), and a frozen process is no random hiccup.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.netio import save_arrays
from spikeport.errors import LavaRuntimeError, SpikeportError
from spikeport.files import fileio

DEFAULT_TIMEOUT_S = 1800.0
HEARTBEAT_TIMEOUT_S = 120.0  # Lava's build step can be silent for a while on big nets
CHILD = ("-m", "spikeport.deploy.lava_child")  # the child's interpreter arguments; work folder and record follow
NETX_FILE = "model.net"  # a netx file in the work folder makes the child run it with lava-dl
BAD_INPUT_EXIT = 2  # the child's error is not a runtime failure (error.txt says what): not retried
RETRIES = 1  # a Lava runtime failure is run again once, in a fresh child
OUTPUTS = ("spikes.npz", "spikes.tmp.npz", "error.txt", "heartbeat", "stderr.txt")  # a child's files


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
    """Write the network (``put_net(folder)``) and x into a work folder, run the child (:data:`CHILD`) on
    it, once more after a Lava runtime failure (module docstring). Returns (outputs per population, the
    regression values or None)."""
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="spikeport-lava-") as tmp:
        tmpd = Path(tmp)
        put_net(tmpd)
        np.save(tmpd / "x.npy", np.ascontiguousarray(x))
        logs: list[str] = []
        for attempt in range(1 + RETRIES):
            failure = _attempt(tmpd, record, deadline, timeout_s, heartbeat_s)
            if failure is None:
                with np.load(tmpd / "spikes.npz", allow_pickle=False) as data:
                    n = len([k for k in data.files if k.startswith("s")])
                    return [data[f"s{i}"] for i in range(n)], (data["values"] if "values" in data.files else None)
            detail, retry = failure
            logs.append(_child_log(tmpd, attempt, detail))
            if not retry or attempt == RETRIES:
                break
            warnings.warn(f"Lava runtime failure ({detail}): running it again in a fresh Lava process",
                          RuntimeWarning, stacklevel=3)
        tries = "once" if len(logs) == 1 else f"in {len(logs)} fresh Lava processes"
        raise LavaRuntimeError(f"Lava runtime failure, no parity result: {detail} (failed {tries}); "
                               f"the Lava child's log: {_save_log(logs)}")


def _attempt(tmpd: Path, record: str, deadline: float, timeout_s: float,
             heartbeat_s: float) -> tuple[str, bool] | None:
    """One child on the work folder: None when it wrote its spikes, else (what failed, whether a retry
    may help). The time limit and the child's bad input raise ``SpikeportError``."""
    for name in OUTPUTS:  # a fresh start: nothing of an earlier child is read as this one's
        (tmpd / name).unlink(missing_ok=True)
    cmd = [sys.executable, *CHILD, str(tmpd), record]
    with open(tmpd / "stderr.txt", "wb") as err_fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_fh,
                                start_new_session=True)
        try:
            stopped = _wait(proc, tmpd / "heartbeat", deadline, heartbeat_s)
        finally:
            _kill_group(proc)
    if stopped == "timeout":
        raise SpikeportError(f"Lava did not finish within {timeout_s:.0f} s; the simulation was stopped "
                             "(raise --timeout, or run fewer samples)")
    if stopped == "heartbeat":
        return f"Lava stopped responding (no heartbeat for {heartbeat_s:.0f} s); the simulation was stopped", False
    error = (tmpd / "error.txt").read_text().strip() if (tmpd / "error.txt").exists() else ""
    if proc.returncode == BAD_INPUT_EXIT and error:
        raise SpikeportError(f"Lava run failed: {error.splitlines()[0]}")
    if proc.returncode == 0 and (tmpd / "spikes.npz").exists():
        return None
    return (error.splitlines()[0] if error else _exit_reason(proc.returncode)), True


def _child_log(tmpd: Path, attempt: int, detail: str) -> str:
    """What one failed child left: its failure, error.txt (with the traceback) and stderr."""
    parts = [f"== Lava child {attempt + 1}: {detail}"]
    for name in ("error.txt", "stderr.txt"):
        path = tmpd / name
        text = path.read_text(errors="replace").strip() if path.exists() else ""
        parts.append(f"-- {name}:\n{text or '(empty)'}")
    return "\n".join(parts) + "\n"


def _save_log(logs: list[str]) -> Path:
    """The children's logs in a new file of the temporary folder (it outlives the work folder); its path."""
    fd, name = tempfile.mkstemp(prefix=f"spikeport-lava-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
    os.close(fd)
    fileio.write_text(name, f"spikeport {' '.join(sys.argv[1:])}\n\n" + "\n".join(logs))
    return Path(name)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"the Lava child process was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"the Lava child process exited with code {code} without its spikes"


def _wait(proc: subprocess.Popen, heartbeat: Path, deadline: float, heartbeat_s: float) -> str | None:
    """Wait for the child: None when it exited, "timeout" past ``deadline`` (time.monotonic), "heartbeat"
    when its heartbeat file is older than ``heartbeat_s``."""
    started_at = time.time()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return "timeout"
        try:
            beat = heartbeat.stat().st_mtime
        except FileNotFoundError:  # not started yet: count from the launch
            beat = started_at
        if time.time() - beat > heartbeat_s:
            return "heartbeat"
        time.sleep(0.05)
    return None
