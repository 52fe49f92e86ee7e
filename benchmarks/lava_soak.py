"""Soak of the parity gate on Lava under a busy machine: N runs of ``spikeport parity RUN --backend lava``
(the command CI gates on, each a fresh interpreter) while another process keeps every core busy.

The network is exact (the emulator, the integer reference and Lava agree spike for spike), so every
run must exit 0: an exit 1 (a gate "failure"), 2 or 3 is a spurious failure. Each run's stderr is
searched for the supervisor's retry warning ("running it again in a fresh Lava process"), so the
table also says how many runs needed the retry of a Lava runtime failure. The load is one process
with one busy thread per core (numpy matrix products, which release the GIL); its CPU time over the
soak is printed (cores used).

Usage: ``python benchmarks/lava_soak.py [--runs 50] [--samples 8] [--load / --no-load] [--run RUN]``
(without ``--run``: a small digits MLP is trained and exported first, as the tests' ``tiny_run``).
"""
from __future__ import annotations

import argparse
import collections
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RETRY_NOTE = "running it again in a fresh Lava process"
LOAD = """
import threading, numpy as np
def spin():
    a = np.random.default_rng(0).random((400, 400))
    while True:
        a = (a @ a) / 400.0
for _ in range({n} - 1):
    threading.Thread(target=spin, daemon=True).start()
spin()
"""


def _tiny_run(folder: Path) -> Path:
    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    run = folder / "run"
    train(TrainConfig(data="digits", epochs=12, hidden=[64], time_steps=12), run)
    export_run(run)
    return run


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--load", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--run", type=Path, default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="lava-soak-") as tmp:
        run = Path(tmp) / "run"
        if args.run:
            shutil.copytree(args.run, run)
        else:
            run = _tiny_run(Path(tmp))
        load = subprocess.Popen([sys.executable, "-c", LOAD.format(n=cores)], env=env) if args.load else None
        what = f"one process, {cores} busy threads" if load else "none"
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.machine())
        print(f"machine: {cpu}, {cores} logical CPUs, Python "
              f"{platform.python_version()}; load: {what}")
        try:
            time.sleep(2.0)
            print(f"load average at start: {os.getloadavg()[0]:.2f}")
            counts, retried, t0 = collections.Counter(), 0, time.monotonic()
            load_cpu0 = _cpu_seconds(load.pid) if load else 0.0
            for i in range(args.runs):
                t = time.monotonic()
                proc = subprocess.run([sys.executable, "-m", "spikeport.cli", "parity", str(run), "--backend", "lava",
                                       "--samples", str(args.samples), "--quiet"], capture_output=True, text=True,
                                      env=env, cwd=ROOT)
                counts[proc.returncode] += 1
                retried += RETRY_NOTE in proc.stderr
                note = "" if proc.returncode == 0 else " " + (proc.stderr.strip().splitlines() or [""])[-1][:300]
                print(f"run {i + 1}: exit {proc.returncode}, {time.monotonic() - t:.1f} s"
                      f"{', retried' if RETRY_NOTE in proc.stderr else ''}{note}", flush=True)
            wall = time.monotonic() - t0
            used = (_cpu_seconds(load.pid) - load_cpu0) / wall if load else 0.0
        finally:
            if load:
                load.kill()
                load.wait()
    spurious = args.runs - counts[0]
    print(f"\n{args.runs} parity runs on Lava ({args.samples} samples each), {wall / args.runs:.1f} s per run; "
          f"load process used {used:.2f} cores; load average at end: {os.getloadavg()[0]:.2f}")
    print(f"exit codes: {dict(sorted(counts.items()))}; spurious failures: {spurious}; runs that needed the retry: "
          f"{retried}")


if __name__ == "__main__":
    main()
