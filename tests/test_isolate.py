"""spikeport.files.isolate.run_isolated: a check run in a forked child, its outcome reported back as a
SpikeportError (its own message, a timeout, a crash) or None; the child is always reaped."""
from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import pytest

from spikeport.errors import SpikeportError
from spikeport.files import isolate


@pytest.fixture
def forked(monkeypatch) -> list[int]:
    """The pids of the children run_isolated forks (recorded in the parent only)."""
    pids, real_fork = [], os.fork

    def fork():
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(isolate.os, "fork", fork)
    return pids


def assert_gone(pids: list[int]) -> None:
    assert len(pids) == 1
    with pytest.raises(ChildProcessError):  # already reaped: not our child any more
        os.waitpid(pids[0], os.WNOHANG)
    assert not Path(f"/proc/{pids[0]}").exists()  # no zombie either


def test_success_returns_none_and_runs_in_a_child(forked):
    seen = []
    assert isolate.run_isolated(lambda: seen.append(os.getpid()), 5.0, "f.nir") is None
    assert seen == []  # the check ran in another process: nothing it did reaches this one
    assert_gone(forked)


def test_spikeport_error_message_passes_through(forked):
    def check():
        raise SpikeportError("f.nir: node 'lif1' field 'tau_mem': NaN")

    with pytest.raises(SpikeportError) as err:
        isolate.run_isolated(check, 5.0, "f.nir")
    assert str(err.value) == "f.nir: node 'lif1' field 'tau_mem': NaN"
    assert_gone(forked)


def test_other_exception_becomes_one_spikeport_error(forked):
    def check():
        raise KeyError("heap")

    with pytest.raises(SpikeportError, match=r"^f\.nir: cannot be read \(KeyError: 'heap'\)$"):
        isolate.run_isolated(check, 5.0, "f.nir")
    assert_gone(forked)


def test_endless_loop_times_out_and_the_child_is_reaped(forked):
    def check():
        while True:
            pass

    t0 = time.monotonic()
    with pytest.raises(SpikeportError, match=r"^f\.nir: reading it did not finish within 1 s"):
        isolate.run_isolated(check, 1.0, "f.nir")
    assert time.monotonic() - t0 < 1.0 + 2.0
    assert_gone(forked)


def test_crash_becomes_the_crashed_error(forked):
    def check():
        faulthandler.disable()  # in the child only: pytest's traceback dump would just add noise
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)

    t0 = time.monotonic()
    with pytest.raises(SpikeportError, match=r"^f\.nir: reading it crashed the HDF5 library \(SIGSEGV\)"):
        isolate.run_isolated(check, 5.0, "f.nir")
    assert time.monotonic() - t0 < 5.0  # reported when it happens, not at the timeout
    assert_gone(forked)
