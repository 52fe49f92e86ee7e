"""Fused CUBA-LIF kernel on a GPU: training step throughput vs the step-by-step reference loop.

784-256-10 LIF (beta_syn = 0), T=25, batch 128, forward + backward + Adam, float32. Prints
samples/s for each, the ratio, and device/version info. Needs only torch (runs where spikeport's
other dependencies are not installed). Usage: python benchmarks/gpu_fused.py [--device cuda]
"""
import argparse
import time

import torch

from spikeport.train.fused import cuba_lif_multistep, reference_multistep


def step_fn(kernel, x, w1, w2, y, opt):
    h = kernel(x @ w1.t(), 0.0, 0.9, 1.0)
    o = kernel(h @ w2.t(), 0.0, 0.9, 1.0)
    loss = torch.nn.functional.cross_entropy(o.sum(0), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def bench(kernel, device, iters=30, T=25, B=128):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, 784, generator=g) < 0.2).float().to(device)
    y = torch.randint(0, 10, (B,), generator=g).to(device)
    w1 = (torch.randn(256, 784, generator=g) * 0.1).to(device).requires_grad_()
    w2 = (torch.randn(10, 256, generator=g) * 0.3).to(device).requires_grad_()
    opt = torch.optim.Adam([w1, w2], lr=1e-3)
    for _ in range(5):
        step_fn(kernel, x, w1, w2, y, opt)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step_fn(kernel, x, w1, w2, y, opt)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return iters * B / (time.perf_counter() - t0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    fused = bench(cuba_lif_multistep, args.device)
    ref = bench(reference_multistep, args.device)
    print(f"device {name}, torch {torch.__version__}")
    print(f"fused     {fused:10.0f} samples/s")
    print(f"reference {ref:10.0f} samples/s")
    print(f"ratio     {fused / ref:10.2f}x")
