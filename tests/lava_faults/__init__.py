"""Fault injection for the Lava supervisor's tests: a child process that fails on purpose.

:func:`install` points :data:`spikeport.deploy.supervise.CHILD` at :mod:`tests.lava_faults.child`
with a fault name, so ``supervise.run_lava`` launches a child that hangs, raises, crashes, or runs
Lava with a process model that raises or blocks (``procs/faulty.py``, in a folder of its own since
Lava's compiler imports every file beside a custom process). The package itself reads no variable.

Faults: "hang" / "silent-hang" block the child with / without heartbeat, "raise" / "crash" fail it
before Lava starts, "model-raise" / "model-hang" make the first dense connection's process model
raise / block inside Lava; "eof" raises ``EOFError: Ran out of input`` (what a broken Lava pipe
gives) in every child, "eof-once" in the first child of a run only; "split-read" deschedules the
actor watcher between the length header and the payload of every message it reads from a Lava
actor's exception pipe (and makes it look every 10 ms), which is how Lava's own reader and the
watcher split a message on a busy machine.
"""
from __future__ import annotations

FAULTS = ("hang", "silent-hang", "raise", "crash", "model-raise", "model-hang", "eof", "eof-once", "split-read")


def child_args(fault: str) -> tuple[str, ...]:
    """The interpreter arguments of a faulty child (replacing ``supervise.CHILD``)."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    return ("-m", "tests.lava_faults.child", fault)


def install(monkeypatch, fault: str) -> None:
    """Make every supervised Lava run of this process use a child with ``fault``."""
    from spikeport.deploy import supervise

    monkeypatch.setattr(supervise, "CHILD", child_args(fault))
