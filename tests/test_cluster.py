"""Parity on a Ray cluster: a head node started by the test on loopback with two worker CPUs; the
merged result equals the one-process run spike for spike, and a shard whose worker is killed mid-run
is run again with the same result."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from spikeport import pipeline
from spikeport.errors import SpikeportError

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs (two workers), stopped afterwards."""
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, capture_output=True, timeout=180, env=env)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120, env=env)


def _outputs(run: Path) -> dict:
    with np.load(run / "parity_outputs.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_cluster_parity_equals_the_one_process_run(tiny_run, tmp_path, cluster):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    local = pipeline.parity(run, backend="lava,emulator", samples=60, out=run / "local.json")
    mine = _outputs(run)
    res = pipeline.parity(run, backend="lava,emulator", samples=60, cluster=cluster)
    assert res["cluster"] == cluster and res["spike_mismatches"] == 0 == local["spike_mismatches"]
    theirs = _outputs(run)
    assert all(np.array_equal(mine[k], theirs[k]) for k in mine)  # the merged outputs of every side equal


@pytest.mark.slow
def test_a_killed_worker_reruns_its_shard(tiny_run, tmp_path, cluster):
    """SIGKILL the Ray worker running a Lava shard while it runs: Ray runs the shard again, the result
    equals the one-process run (slow: the Lava shards must run long enough to be caught)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    pipeline.parity(run, backend="emulator", samples=300, out=run / "local.json")
    mine = _outputs(run)
    killed = []

    def kill_a_shard_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid in os.listdir("/proc"):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::_shard") and pid.isdigit():
                    time.sleep(1.0)
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            time.sleep(0.1)

    threading.Thread(target=kill_a_shard_worker, daemon=True).start()
    res = pipeline.parity(run, backend="lava", samples=300, cluster=cluster)
    assert killed, "no shard worker was seen running"
    assert res["spike_mismatches"] == 0
    assert np.array_equal(_outputs(run)["lava"], mine["emulator"])


def test_the_cluster_refuses_a_backend_it_does_not_run():
    from spikeport.deploy.cluster import run_on_cluster

    with pytest.raises(SpikeportError, match="netx"):
        run_on_cluster(None, np.zeros((1, 1, 1)), "netx", "local")
