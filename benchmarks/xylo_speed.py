"""SynSense's xylosim (C++, one sample at a time) vs spikeport's batched Xylo emulator (numpy) on the same networks
and inputs, with a spike-count and state check on every sample timed.

Networks (Xylo Audio 2 shapes; random 8-bit weights, one threshold for all): 16-8-4 and 16-1000-8 (feed-forward),
16-1000-8 with 3.2 % recurrent connections (32 recurrent targets per hidden neuron: Xylo's fan-out memory holds
32,000 in all, so 10 % recurrence on 1000 neurons does not fit), and the digits-rows net of examples/xylo_digits_rows.toml
when a trained run is given (``--run``). Input: random events, 0..3 per channel per step with probability 0.3,
T = 100 steps (T of the trained run for ``--run``).

Prints per network: time per step and samples/s of each, the ratio, and the mismatching spike counts and
states (must be 0); then the machine and versions.

    .venv/bin/python benchmarks/xylo_speed.py [--samples 200] [--run runs/xylo_rows]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import time

import numpy as np

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet
from spikeport.deploy import xylo_emulator, xylo_sim


def random_net(rng, n_in: int, n_hid: int, n_out: int, rec: float, T: int) -> XyloNet:
    w_in = rng.integers(-60, 61, (n_in, n_hid, 2)) * (rng.random((n_in, n_hid, 2)) < 0.5)
    w_rec = np.zeros((n_hid, n_hid, 2), np.int64)
    if rec:
        for j in range(n_hid):  # each neuron: about rec * n_hid targets, never more than the fan-out limit
            k = min(xylo.FANOUT_MAX, int(rec * n_hid))
            tgt = rng.choice(n_hid, size=k, replace=False)
            w_rec[j, tgt, 1] = rng.integers(-30, 31, k)
    w_out = rng.integers(-60, 61, (n_hid, n_out))
    return XyloNet(weights_in=w_in, weights_rec=w_rec, weights_out=w_out, dash_mem=3, dash_syn=2, dash_syn_2=2,
                   dash_mem_out=3, dash_syn_out=2, threshold=400, threshold_out=400, bias=0, bias_out=0,
                   weight_shift_in=2, weight_shift_rec=1, weight_shift_out=1, time_steps=T)


def bench(name: str, net: XyloNet, x: np.ndarray) -> dict:
    assert net.violations() == [], net.violations()
    t0 = time.perf_counter()
    a = xylo_sim.run(net, x, record_states=True)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = xylo_emulator.run(net, x, record_states=True)
    t_emu = time.perf_counter() - t0
    spikes = sum(int((p != q).sum()) for p, q in zip(a.spikes, b.spikes))
    states = sum(int((a.states[k] != b.states[k]).sum()) for k in a.states)
    T, B = x.shape[:2]
    rate = float(b.spikes[0].astype(np.float64).mean())
    print(f"{name:28s} B={B:4d} T={T:3d}  xylosim {t_sim / (T * B) * 1e6:9.1f} us/step/sample "
          f"({B / t_sim:8.1f} samples/s)   emulator {t_emu / (T * B) * 1e6:8.2f} us ({B / t_emu:9.1f} samples/s)   "
          f"emulator / xylosim speed {t_sim / t_emu:6.1f}x   hidden spikes/neuron/step {rate:.3f}   "
          f"mismatches: spikes {spikes}, states {states}")
    return {"name": name, "xylosim_s": t_sim, "emulator_s": t_emu, "mismatches": spikes + states}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--run", default=None, help="a trained Xylo run folder (model.xylo.json; its test inputs)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    T, B = args.steps, args.samples
    rows = []
    for name, shape, rec in (("16-8-4", (16, 8, 4), 0.0), ("16-1000-8", (16, 1000, 8), 0.0),
                             ("16-1000r-8 (fan-out 32)", (16, 1000, 8), 0.032)):
        net = random_net(rng, *shape, rec, T)
        x = rng.integers(0, 4, (T, B, shape[0])) * (rng.random((T, B, shape[0])) < 0.3)
        rows.append(bench(name, net, x))
    if args.run:
        from pathlib import Path

        from spikeport.pipeline.xylo_parity import load_net, reference_for

        net = load_net(Path(args.run))
        x, _ = reference_for(Path(args.run), net).inputs(None)
        rows.append(bench(f"{net.describe()} (trained, test set)", net, x))
    assert all(r["mismatches"] == 0 for r in rows)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print("versions: python " + platform.python_version() + ", " + ", ".join(
        f"{p} {importlib.metadata.version(p)}" for p in ("numpy", "xylosim")))


if __name__ == "__main__":
    main()
