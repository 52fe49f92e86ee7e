"""Where a ``spikeport train`` step's time goes: the real network (``checkpoint.build_model``), QAT on,
eager fused op vs compiled vs two floors, interleaved in one process; optional torch.profiler table by op.

Variants (same model, same batch, same initial weights; one training step = forward + BPTT + Adam):
  eager      : what ``spikeport train --no-compile`` runs (fused op, eager loops)
  compiled   : ``--compile`` (fused op's loops through torch.compile)
  floor-qat  : every neuron replaced by ReLU, QAT's fake quantizer kept (what no neuron can go below
               with QAT on)
  floor      : ReLU, QAT off (the benchmark's "no-neuron floor" row: layers, loss, Adam alone)

Usage: ``python benchmarks/train_profile.py --net conv --rounds 5 --iters 5 [--profile eager,compiled]``.
Prints per-variant median / best ms per step, the load average, and first-step time of the compiled path.
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spikeport.data import encode  # noqa: E402
from spikeport.train import checkpoint, methods, model as model_mod  # noqa: E402
from spikeport.train.config import TrainConfig  # noqa: E402
from spikeport.train.loop import float_input  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
NETS = {  # spikeport train configurations of the benchmark's nets (LIF: beta_syn 0, beta_mem 0.9, theta 1)
    "conv": dict(arch="conv", channels=[16, 32], hidden=[], pool=2, pool_mode="sum", time_steps=8, encoder="rate"),
    "mlp": dict(arch="fc", hidden=[256], time_steps=25, encoder="rate"),
    "mlp-direct": dict(arch="fc", hidden=[256], time_steps=25, encoder="direct"),
}


def _relu_op(cur, beta_syn, beta_mem, theta, bias=0.0, **_):
    return torch.relu(cur)


def build(net: str, batch: int):
    cfg = TrainConfig(data="fashion-mnist", beta_syn=0.0, beta_mem=0.9, theta=1.0, batch_size=batch, **NETS[net])
    torch.manual_seed(0)
    shape = (1, 28, 28)
    m = checkpoint.build_model(cfg, 784, 10, shape)
    raw = np.frombuffer(gzip.open(FASHION).read(), np.uint8, offset=16).reshape(-1, *shape)[:batch]
    enc = encode(raw, cfg.time_steps, cfg.encoder, seed=0)
    x = float_input(enc, cfg.encoder)
    y = torch.from_numpy(np.arange(batch) % 10)
    return cfg, m, x, y


def make_step(cfg, m, x, y, variant: str):
    method = methods.get(cfg.method)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    qat = variant != "floor"

    def step():
        for layer in m.layers:
            layer.compile_fused = variant == "compiled"
        real = model_mod.cuba_lif_multistep
        if variant.startswith("floor"):
            model_mod.cuba_lif_multistep = _relu_op
        try:
            loss = method.loss(m(x, qat=qat), y, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        finally:
            model_mod.cuba_lif_multistep = real
        return loss.item()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="conv", choices=sorted(NETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="eager,compiled,floor-qat,floor")
    ap.add_argument("--compile-times", action="store_true", help="print dynamo's compile-time breakdown")
    ap.add_argument("--profile", default="", help="comma-separated variants to profile by op (after timing)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from spikeport.train.allocator import keep_freed_memory

    keep_freed_memory()
    print(f"net {args.net}, batch {args.batch}, threads {args.threads}, torch {torch.__version__}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    variants = args.variants.split(",")
    steps, times = {}, {v: [] for v in variants}
    from spikeport.train import compiling

    print(f"compile cache: {compiling.use_cache()}")
    for v in variants:
        cfg, m, x, y = build(args.net, args.batch)
        steps[v] = make_step(cfg, m, x, y, v)
        t0 = time.perf_counter()
        loss = steps[v]()
        print(f"{v}: first step {time.perf_counter() - t0:.2f} s, first loss {loss:.6f}")
        if v == "compiled" and args.compile_times:
            print(torch._dynamo.utils.compile_times(repr="str", aggregate=True))
        steps[v]()
    for _ in range(args.rounds):
        for v in variants:
            for _ in range(args.iters):
                t0 = time.perf_counter()
                steps[v]()
                times[v].append(1e3 * (time.perf_counter() - t0))
    for v in variants:
        print(f"{v:10s} median {statistics.median(times[v]):7.1f} ms  best {min(times[v]):7.1f} ms  "
              f"({len(times[v])} steps)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    for v in filter(None, args.profile.split(",")):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                steps[v]()
        print(f"\n### profile: {v} (3 steps, self CPU time by op)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=40))


if __name__ == "__main__":
    main()
