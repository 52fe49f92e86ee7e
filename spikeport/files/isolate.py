"""Run a check that may hang or crash inside a C library in a forked child, with a timeout.

Some corruptions of an HDF5 file make the HDF5 library loop forever or crash while it reads (found by
``tests/test_fuzz.py``: a bit flip in a variable-length string's heap reference hangs
``Dataset.__getitem__``). No Python-level timeout can interrupt C code, so readers first do the
risky part in a child forked from this process (no new interpreter: it costs milliseconds) and read
the file themselves only when the child finished cleanly. The child reports an error as one line
through a pipe; a hang is killed after ``timeout_s``; a crash is reported with its signal.

Unix only (``os.fork``); elsewhere the check runs in-process.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable

from spikeport.errors import SpikeportError

POLL_S = 0.005


def run_isolated(check: Callable[[], None], timeout_s: float, what: str) -> None:
    """Run ``check()`` in a forked child. Its SpikeportError (or any exception) becomes a SpikeportError
    here; so do a timeout and a crash. ``what`` starts every message (e.g. the file name)."""
    if not hasattr(os, "fork"):
        check()
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the check, report one line, never return into the caller's stack
        code = 0
        try:
            os.close(r)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            check()
        except SpikeportError as err:
            os.write(w, str(err).encode("utf-8", "replace")[:2000])
            code = 2
        except BaseException as err:  # noqa: BLE001 - reported to the parent as one line
            os.write(w, f"{what}: cannot be read ({type(err).__name__}: {str(err)[:200]})".encode("utf-8", "replace"))
            code = 3
        os._exit(code)
    os.close(w)
    try:
        status = _wait(pid, timeout_s, what)
        message = os.read(r, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(r)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise SpikeportError(f"{what}: reading it crashed the HDF5 library ({name}); the file is corrupt")
    if os.WEXITSTATUS(status) != 0:
        raise SpikeportError(message or f"{what}: cannot be read")


def _wait(pid: int, timeout_s: float, what: str) -> int:
    """The child's exit status; it is killed (and reaped) on timeout or when this process is interrupted."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if time.monotonic() > deadline:
                raise SpikeportError(f"{what}: reading it did not finish within {timeout_s:.0f} s (a corrupt file "
                                     "can make the HDF5 library loop); the file was not loaded")
            time.sleep(POLL_S)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
