"""Lava supervision: hangs, exceptions and crashes, inside and outside Lava, become one clear line:
a Lava runtime failure (a process model or the child dying, a broken pipe) is retried once in a fresh
child and then is a LavaRuntimeError naming the saved log, never a result; the time limit and other
errors are a SpikeportError. Every child is reaped and no process of its session survives the call
(or the command, even when the command itself is killed)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from spikeport.core import loihi
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import supervise
from spikeport.errors import LavaRuntimeError, SpikeportError
from tests import lava_faults

REPO = Path(__file__).resolve().parents[1]


def tiny_net() -> tuple[LoihiNet, np.ndarray]:
    """A 6-5-3 network and 3 samples of 4 steps (binary input spikes)."""
    rng = np.random.default_rng(0)
    lif = loihi.LIFParams(du=100, dv=200, vth=10)
    pops = [Population("lif0", 5, lif, Connection("fc0", rng.integers(-50, 50, (5, 6)).astype(np.int8), 0)),
            Population("lif1", 3, lif, Connection("fc1", rng.integers(-50, 50, (3, 5)).astype(np.int8), 0))]
    x = (rng.random((4, 3, 6)) < 0.5).astype(np.int64)
    return LoihiNet(input_shape=(6,), populations=pops, time_steps=4, graded_input=False), x


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st and int(st[3]) == sid and st[0] != "Z":
                out.append(int(entry))
    return out


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``SPIKEPORT_TEST_MARK=marker`` (inherited by Lava's forks)."""
    needle = f"SPIKEPORT_TEST_MARK={marker}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        st = _proc_stat(int(entry))
        if needle in env.split(b"\0") and st and st[0] != "Z":
            out.append(int(entry))
    return out


@pytest.fixture
def popen_log(monkeypatch):
    """Every Lava child the supervisor starts, kept for inspection (``supervise.subprocess`` is the
    subprocess module itself: other Popen calls meanwhile are not recorded)."""
    started = []

    class Recorder(subprocess.Popen):
        def __init__(self, args, *rest, **kwargs):
            super().__init__(args, *rest, **kwargs)
            if {"spikeport.deploy.lava_child", "tests.lava_faults.child"} & set(map(str, args)):
                started.append(self)

    monkeypatch.setattr(supervise.subprocess, "Popen", Recorder)
    return started


def assert_reaped(procs, children: int = 1) -> None:
    """``children`` children were started, each waited for, and nothing of their sessions (Lava's forks) is left."""
    assert len(procs) == children
    for proc in procs:
        assert proc.returncode is not None, "child not reaped"
        st = _proc_stat(proc.pid)
        assert st is None or st[0] != "Z", "child left as a zombie"
        deadline = time.monotonic() + 3
        while session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session_members(proc.pid) == [], "processes of the Lava child's session survived"


def test_clean_run_matches_emulator_and_leaves_nothing(popen_log):
    from spikeport.deploy import emulator

    net, x = tiny_net()
    spikes = supervise.run_lava(net, x, timeout_s=60)
    ref = emulator.run(net, x).spikes
    assert all(np.array_equal(a, b) for a, b in zip(spikes, ref))
    assert_reaped(popen_log)


@pytest.mark.parametrize("fault, timeout_s, heartbeat_s, error, expect, children, limit_s", [
    ("model-raise", 60, 60, LavaRuntimeError, "a Lava process model failed: RuntimeError: injected failure", 2, 30),
    ("model-hang", 6, 60, SpikeportError, "did not finish within 6 s", 1, 20),
    ("hang", 3, 60, SpikeportError, "did not finish within 3 s", 1, 10),
    ("silent-hang", 60, 3, LavaRuntimeError, "no heartbeat for 3 s", 1, 10),
    ("raise", 60, 60, SpikeportError, "Lava run failed: RuntimeError: injected failure inside the Lava child", 1, 10),
    ("crash", 60, 60, LavaRuntimeError, "killed by SIGSEGV", 2, 15),
    ("eof", 60, 60, LavaRuntimeError, "EOFError: Ran out of input", 2, 15),
])
def test_fault_becomes_one_clear_error(fault, timeout_s, heartbeat_s, error, expect, children, limit_s, popen_log,
                                       monkeypatch):
    """Runtime failures are retried once and then name the saved log of both children; the time limit, a
    lost heartbeat and other errors are not retried."""
    net, x = tiny_net()
    lava_faults.install(monkeypatch, fault)
    t0 = time.monotonic()
    with pytest.raises(SpikeportError if error is SpikeportError else LavaRuntimeError) as info:
        supervise.run_lava(net, x, timeout_s=timeout_s, heartbeat_s=heartbeat_s)
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert type(info.value) is error and expect in msg and "\n" not in msg, msg
    assert elapsed < limit_s, f"{fault}: took {elapsed:.1f} s"
    assert_reaped(popen_log, children)
    if error is LavaRuntimeError:
        log = Path(re.search(r"log: (\S+)$", msg).group(1))
        text = log.read_text()
        assert text.count("== Lava child") == children and expect in text
        if fault in ("eof", "model-raise"):  # the child's own traceback (eof) or the model's exception
            assert "Ran out of input" in text if fault == "eof" else "injected failure" in text
        log.unlink()


def test_runtime_failure_once_is_retried_in_a_fresh_child(popen_log, monkeypatch):
    """A Lava pipe that breaks in the first child only: the second child's spikes are the result."""
    from spikeport.deploy import emulator

    net, x = tiny_net()
    lava_faults.install(monkeypatch, "eof-once")
    with pytest.warns(RuntimeWarning, match="EOFError: Ran out of input.*running it again in a fresh Lava process"):
        spikes = supervise.run_lava(net, x, timeout_s=60)
    assert all(np.array_equal(a, b) for a, b in zip(spikes, emulator.run(net, x).spikes))
    assert_reaped(popen_log, 2)
    assert popen_log[0].returncode != 0 and popen_log[1].returncode == 0


def test_watcher_and_lava_never_split_a_pipe_message(popen_log, monkeypatch):
    """The actor watcher paused inside every read of an actor's exception pipe while Lava's stop joins
    the actors (what a busy machine does): one child, spikes equal to the emulator's (before the pipe
    lock, Lava's join read the payload as a length: EOFError: Ran out of input)."""
    from spikeport.deploy import emulator

    net, x = tiny_net()
    lava_faults.install(monkeypatch, "split-read")
    spikes = supervise.run_lava(net, x, timeout_s=60)
    assert all(np.array_equal(a, b) for a, b in zip(spikes, emulator.run(net, x).spikes))
    assert_reaped(popen_log, 1)


def test_lava_actor_killed_by_a_signal_is_noticed_at_once(popen_log, monkeypatch):
    """A Lava process dying without an exception (e.g. the kernel's OOM killer), in the first child and in
    its retry, ends the run with a clear error within seconds, not at the timeout."""
    import threading

    def kill_one_actor_per_child():
        for n in range(1 + supervise.RETRIES):
            while len(popen_log) <= n:
                time.sleep(0.05)
            child = popen_log[n].pid
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                actors = [p for p in session_members(child) if p != child
                          and int((_proc_stat(p) or [0, 0])[1]) == child
                          and b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
                if len(actors) >= 3:  # source, connection, LIF processes started
                    time.sleep(1.0)
                    os.kill(actors[-1], signal.SIGKILL)
                    break
                time.sleep(0.1)

    threading.Thread(target=kill_one_actor_per_child, daemon=True).start()
    net, x = tiny_net()
    lava_faults.install(monkeypatch, "model-hang")
    t0 = time.monotonic()
    with pytest.raises(LavaRuntimeError, match=r"a Lava process ended unexpectedly \(killed by SIGKILL\)"):
        supervise.run_lava(net, x, timeout_s=60)
    assert time.monotonic() - t0 < 40
    assert_reaped(popen_log, 2)


def test_the_package_reads_no_fault_variable():
    """Fault injection lives in tests/: no module of the package mentions a fault hook."""
    import spikeport

    root = Path(spikeport.__file__).parent
    hook = re.compile(r"SPIKEPORT_[A-Z_]*FAULT|faulty|lava_faults", re.IGNORECASE)
    hits = [str(p) for p in root.rglob("*.py") if hook.search(p.read_text())]
    assert hits == []


def _cli_env(marker: str) -> dict:
    return {**os.environ, "SPIKEPORT_TEST_MARK": marker}


def _faulty_cli(fault: str, *args: str) -> list[str]:
    """The CLI with a faulty Lava child (tests/lava_faults/cli.py), run from the repository root."""
    return [sys.executable, "-m", "tests.lava_faults.cli", fault, *args]


def test_cli_parity_on_a_failing_lava_exits_3_with_the_log_and_no_result(tiny_run, tmp_path):
    """The parity gate on a Lava whose process model raises (in both children): exit 3, not 1 or 0; one
    line naming the saved log; no parity.json; no process left."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("parity*.json"))
    marker = uuid.uuid4().hex
    proc = subprocess.run(_faulty_cli("model-raise", "parity", str(run), "--backend", "lava", "--samples", "4"),
                          capture_output=True, text=True, timeout=180, env=_cli_env(marker), cwd=REPO)
    assert proc.returncode == 3, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    notes = [ln for ln in lines if ln.startswith("spikeport: warning: Lava runtime failure")]
    lines = [ln for ln in lines if ln not in notes]
    assert len(notes) == 1, proc.stderr  # the retry is said once, in one line
    assert len(lines) == 1 and "Lava runtime failure, no parity result: a Lava process model failed" in lines[0], \
        proc.stderr
    log = Path(re.search(r"log: (\S+)$", lines[0]).group(1))
    text = log.read_text()
    assert text.count("== Lava child") == 2 and "in run_spk" in text  # both children, the model's traceback
    log.unlink()
    assert not (run / "parity.json").exists()
    assert marked_processes(marker) == []


def test_killing_the_command_takes_lava_down_with_it(tiny_run):
    """SIGKILL the CLI while Lava hangs inside a process model: the child notices its parent is gone
    and kills its own process group within a few seconds."""
    marker = uuid.uuid4().hex
    cmd = _faulty_cli("model-hang", "deploy", str(tiny_run / "model.nir"), "--backend", "lava", "--samples", "4")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_cli_env(marker), cwd=REPO)
    deadline = time.monotonic() + 60
    while len(marked_processes(marker)) < 4 and time.monotonic() < deadline:  # CLI, child, Lava actors
        time.sleep(0.2)
    assert len(marked_processes(marker)) >= 4, "Lava never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(marker) == [], "Lava processes outlived the killed command"
