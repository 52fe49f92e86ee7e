"""``python -m tests.lava_faults.child FAULT WORK RECORD``: spikeport's Lava child
(:mod:`spikeport.deploy.lava_child`) with one injected fault (see the package docstring)."""
from __future__ import annotations

import os
import signal
import sys
import time

from spikeport.deploy import lava_backend, lava_child


def _fail_before_lava(fault: str):
    def run_network(*_args, **_kwargs):
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


def main(argv: list[str]) -> int:
    fault, rest = argv[0], argv[1:]
    if fault.startswith("model-"):
        lava_backend._connection_process = _faulty_first_dense(fault[len("model-"):])
    else:  # whichever network the child runs: spikeport's (lava_backend) or a netx file (netx_backend)
        from spikeport.deploy import netx_backend

        lava_backend.run_network = netx_backend.run_file = _fail_before_lava(fault)
    if fault == "silent-hang":  # the parent watch stays, the heartbeat file is never written
        beat = lava_child._heartbeat
        lava_child._heartbeat = lambda path, stop, parent: beat(path.with_name("no-heartbeat"), stop, parent)
    return lava_child.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
