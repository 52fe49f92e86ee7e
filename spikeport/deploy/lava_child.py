"""Child-process entry point for :mod:`spikeport.deploy.supervise` (``python -m`` this module).

Arguments: a work folder holding ``net.npz`` (or a netx ``model.net``), ``x.npy`` and optionally
``options.json`` (netx: ``spike_exp``, ``message_bits``), and the record mode. Writes ``spikes.npz``
(``s0``.. per population, ``values`` for a regression output) or ``error.txt``; touches ``heartbeat``
every second.

Two watchdog threads guard against Lava's hangs (a run that exits without ``stop()``, or whose
process model raised, blocks forever):

- the heartbeat thread also watches the parent: if the supervisor dies (even by SIGKILL), the
  child kills its own process group, so no Lava process outlives the command;
- the actor watcher notices a Lava process model (an actor process Lava forked) that died with an
  exception. Lava itself then deadlocks (the runtime waits for the dead model's output), so the
  watcher writes the model's exception to ``error.txt`` and ends the child at once.

The watcher reads each actor's exception pipe, which Lava's own ``SystemProcess.join`` also reads:
two threads reading one pipe can split a message (one takes the length header, the other reads the
payload as a length and unpickles nothing: ``EOFError: Ran out of input`` in Lava's ``stop``, seen on a
busy machine). :func:`_one_reader_at_a_time` makes both take one lock around their reads.

Exit codes (read by the supervisor): 0 spikes written; :data:`RUNTIME_FAILED_EXIT` an exception of
:data:`RUNTIME_FAILURES` (retried), :data:`ACTOR_FAILED_EXIT` a Lava process model failed (retried);
``supervise.BAD_INPUT_EXIT`` any other exception (not retried). ``error.txt`` holds the exception and
its traceback.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import numpy as np

ACTOR_FAILED_EXIT = 4  # exit code when a Lava actor process failed (error.txt says which)
RUNTIME_FAILED_EXIT = 3  # exit code for an exception of RUNTIME_FAILURES (error.txt says which)
# Exceptions of Lava's runtime plumbing (pipes, shared memory, the process models' channels), not of the
# network: a fresh child may well succeed
RUNTIME_FAILURES = (EOFError, BrokenPipeError, ConnectionError)
WATCH_INTERVAL_S = 0.2  # how often the watcher looks at Lava's actors
_PIPE_LOCK = threading.Lock()  # one reader at a time on an actor's exception pipe


def _heartbeat(path: Path, stop: threading.Event, parent: int) -> None:
    while not stop.is_set():
        if os.getppid() != parent:  # the supervisor is gone: take every Lava process with us
            os.killpg(0, signal.SIGKILL)
        path.touch()
        stop.wait(1.0)


def _failed_actor() -> str | None:
    """Why a Lava actor process (``SystemProcess``) failed, if one did: the exception it reported (one
    line, then the model's traceback), or a non-zero exit status (e.g. killed for memory) read from /proc
    without reaping it."""
    import multiprocessing.process as mpp

    for proc in list(mpp._children):  # processes this interpreter started (Lava's actors among them)
        try:
            exc = getattr(proc, "exception", None)  # SystemProcess: (exception, traceback) or None
        except (OSError, EOFError, ValueError):  # pipe already closed by a normal join
            continue
        if exc:
            err = exc[0] if isinstance(exc, tuple) else exc
            trace = f"\n{exc[1]}" if isinstance(exc, tuple) and len(exc) > 1 else ""
            return f"a Lava process model failed: {type(err).__name__}: {err}{trace}"
        status = _zombie_status(proc.pid)
        if status:
            how = f"killed by {signal.Signals(status & 0x7F).name}" if status & 0x7F else f"exit status {status >> 8}"
            return f"a Lava process ended unexpectedly ({how})"
    return None


def _zombie_status(pid: int | None) -> int:
    """waitpid-style status of a child that has exited but is not yet reaped (0 if running or clean)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, TypeError):
        return 0
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[-1]) if fields and fields[0] == "Z" and len(fields) >= 50 else 0


def _one_reader_at_a_time() -> None:
    """Lava's ``SystemProcess.join`` and ``.exception`` read the actor's exception pipe under
    :data:`_PIPE_LOCK` (the watcher's reads go through ``.exception``); join waits for the actor outside it."""
    import multiprocessing

    from lava.magma.runtime.message_infrastructure.multiprocessing import SystemProcess

    join, exception = SystemProcess.join, SystemProcess.exception.fget

    def joined(self):
        if not self._is_done:
            multiprocessing.Process.join(self)  # an actor still running: wait without the lock
        with _PIPE_LOCK:
            join(self)

    def guarded(self):
        with _PIPE_LOCK:
            return exception(self)

    SystemProcess.join, SystemProcess.exception = joined, property(guarded)


def _watch_actors(work: Path, stop: threading.Event) -> None:
    while not stop.wait(WATCH_INTERVAL_S):
        why = _failed_actor()
        if why:
            (work / "error.txt").write_text(why + "\n")
            os._exit(ACTOR_FAILED_EXIT)  # the main thread is blocked inside Lava; the parent kills the group


def main(argv: list[str]) -> int:
    work, record = Path(argv[0]), argv[1]
    stop = threading.Event()
    parent = os.getppid()
    threading.Thread(target=_heartbeat, args=(work / "heartbeat", stop, parent), daemon=True).start()
    try:
        _one_reader_at_a_time()
        threading.Thread(target=_watch_actors, args=(work, stop), daemon=True, name="lava-actor-watcher").start()
        x = np.load(work / "x.npy", allow_pickle=False)
        from spikeport.deploy.supervise import NETX_FILE

        if (work / NETX_FILE).exists():  # a netx file: lava-dl builds the network (deploy.netx_backend)
            import json

            from spikeport.deploy import netx_backend

            opts = json.loads((work / "options.json").read_text()) if (work / "options.json").exists() else {}
            spikes, values = netx_backend.run_file(work / NETX_FILE, x, message_bits=opts.get("message_bits"),
                                                   spike_exp=opts.get("spike_exp"), with_values=True,
                                                   output=opts.get("output"))
        else:
            from spikeport.core.netio import load_arrays
            from spikeport.deploy import lava_backend

            with np.load(work / "net.npz", allow_pickle=False) as arrays:
                net = load_arrays(arrays)
            spikes, values = lava_backend.run_network(net, x, record=record, with_values=True)
        stop.set()
        tmp = work / "spikes.tmp.npz"
        extra = {} if values is None else {"values": values}
        np.savez(tmp, **{f"s{i}": s for i, s in enumerate(spikes)}, **extra)
        os.replace(tmp, work / "spikes.npz")
        return 0
    except BaseException as err:  # reported to the parent as one line
        from spikeport.deploy.supervise import BAD_INPUT_EXIT

        (work / "error.txt").write_text(f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        return RUNTIME_FAILED_EXIT if isinstance(err, RUNTIME_FAILURES) else BAD_INPUT_EXIT
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
