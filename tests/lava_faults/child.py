"""``python -m tests.lava_faults.child FAULT WORK RECORD``: spikeport's Lava child
(:mod:`spikeport.deploy.lava_child`) with one injected fault (see the package docstring)."""
from __future__ import annotations

import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path

from spikeport.deploy import lava_backend, lava_child


def _fail_before_lava(fault: str, work: Path):
    run_network_ok, run_file_ok = lava_backend.run_network, _netx().run_file

    def run_network(*args, **kwargs):
        if fault == "eof-once":
            marker = work / "eof-once.done"  # the work folder is the same for the supervisor's retry
            if marker.exists():
                return (run_file_ok if isinstance(args[0], Path) else run_network_ok)(*args, **kwargs)
            marker.touch()
        if fault in ("eof", "eof-once"):
            raise EOFError("Ran out of input")
        if fault in ("hang", "silent-hang"):
            time.sleep(10**6)
        if fault == "raise":
            raise RuntimeError("injected failure inside the Lava child")
        os.kill(os.getpid(), signal.SIGSEGV)  # "crash": an interpreter crash, no error.txt
    return run_network


def _faulty_first_dense(mode: str):
    original = lava_backend._connection_process

    def connection_process(conn, graded, window=None):
        proc = original(conn, graded, window)
        if type(proc).__name__ != "Dense" or getattr(connection_process, "done", False):
            return proc
        from tests.lava_faults.procs.faulty import FaultyDense

        connection_process.done = True
        return FaultyDense(weights=proc.weights.init, weight_exp=proc.proc_params["weight_exp"],
                           num_message_bits=proc.proc_params["num_message_bits"], name=conn.name, mode=mode)
    return connection_process


def _netx():
    from spikeport.deploy import netx_backend

    return netx_backend


def _split_reads() -> None:
    """The watcher thread pauses 0.15 s between a message's length header and its payload (a thread
    descheduled there); every other reader runs as usual."""
    from multiprocessing.connection import Connection

    recv_bytes = Connection._recv_bytes

    def paused(self, maxsize=None):
        if threading.current_thread().name != "lava-actor-watcher":
            return recv_bytes(self, maxsize)
        size, = struct.unpack("!i", self._recv(4).getvalue())  # small messages: no 64-bit length
        time.sleep(0.15)
        return self._recv(size)

    Connection._recv_bytes = paused
    lava_child.WATCH_INTERVAL_S = 0.01


def main(argv: list[str]) -> int:
    fault, rest = argv[0], argv[1:]
    if fault.startswith("model-"):
        lava_backend._connection_process = _faulty_first_dense(fault[len("model-"):])
    elif fault == "split-read":
        _split_reads()
    else:  # whichever network the child runs: spikeport's (lava_backend) or a netx file (netx_backend)
        lava_backend.run_network = _netx().run_file = _fail_before_lava(fault, Path(rest[0]))
    if fault == "silent-hang":  # the parent watch stays, the heartbeat file is never written
        beat = lava_child._heartbeat
        lava_child._heartbeat = lambda path, stop, parent: beat(path.with_name("no-heartbeat"), stop, parent)
    return lava_child.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
