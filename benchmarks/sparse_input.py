"""Spike-input kernel vs the dense GEMM: ms per forward + backward of one layer, by input density.

One measurement = y = x @ W^T for a binary x [T*B, n_in] (float32), then y.backward(g): the weight
gradient always, the input gradient only with ``--x-grad`` (a spiking hidden layer; the data input
needs none). Rows:

- ``dense``: torch's GEMMs (``x @ w.t()``, autograd) -- the "no-neuron floor" of this layer;
- ``sparse``: ``spikeport.train.spike_input`` (numba): the index pass, the gather-sum forward and
  the weight gradient by scatter-adds or tables (forced on at every density and width: the index pass
  and ``SpikeLinear`` without ``spike_linear``'s switch);
- ``default``: what training runs, ``spike_linear`` with its measured choice (``files.fastest``: both
  paths timed on this shape once, during the warm-up calls; cached under ``$XDG_CACHE_HOME/spikeport``,
  so point that at an empty folder for a fresh choice): it must never be slower than ``dense``;
- ``torch-csr`` (``--torch-csr``): torch's own sparse CSR product, the CSR built from the same index
  pass, forward ``torch.sparse.mm(x_csr, W^T)``, weight gradient ``x_csr.t() @ g``.

x is Bernoulli(density) per element; ``fmnist-rate`` is a real batch: Fashion-MNIST rate-coded as
``spikeport train`` encodes it (28 % ones), where the images are installed. The rows are timed
interleaved in one process (round robin, several reps), because the machine may be shared; wall
median, best and process CPU time are printed, with the load average before and after.

Usage: ``python benchmarks/sparse_input.py [--threads 2] [--reps 15] [--densities 0.05 0.1 0.28 0.5]
[--n-in 784 --n-out 256 --rows 3200] [--x-grad] [--torch-csr]``.
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def _fmnist_rate(rows: int, n_in: int):
    """[rows, 784] rate-coded Fashion-MNIST (T = 25 steps of rows // 25 images), or None."""
    if n_in != 784 or not FASHION.exists() or rows % 25:
        return None
    from spikeport.data import encode

    raw = np.frombuffer(gzip.open(FASHION).read(), np.uint8, offset=16).reshape(-1, 784)
    imgs = raw[np.random.default_rng(0).choice(len(raw), rows // 25, replace=False)] / 255.0
    return encode(imgs, 25, "rate", seed=1).reshape(rows, 784).astype(np.float32)


def _methods(torch, x, w, g, x_grad: bool, torch_csr: bool):
    """{name: function running forward + backward once}."""
    from spikeport.train import spike_input

    def dense():
        xa = x.requires_grad_(x_grad)
        (xa @ w.t()).backward(g)

    def sparse():  # spike_linear's work without its switch (forced at every density and width)
        xa = x.requires_grad_(x_grad)
        spike_input.SpikeLinear.apply(xa, w, *spike_input.active_index(xa)).backward(g)

    def default():  # the layer's own switch: the kernel where measured faster (and within the density cap)
        xa = x.requires_grad_(x_grad)
        y = spike_input.spike_linear(xa, w)
        (xa @ w.t() if y is None else y).backward(g)

    out = {"dense": dense, "sparse": sparse, "default": default}
    if torch_csr:
        def csr():
            idx, cnt = spike_input.active_index(x)
            crow = torch.from_numpy(np.concatenate([[0], np.cumsum(cnt, dtype=np.int64)]))
            col = torch.from_numpy(idx[np.arange(idx.shape[1])[None, :] < cnt[:, None]].astype(np.int64))
            xs = torch.sparse_csr_tensor(crow, col, torch.ones(len(col)), tuple(x.shape))
            torch.sparse.mm(xs, w.detach().t())
            _ = xs.t() @ g  # the weight gradient, transposed
            if x_grad:
                _ = g @ w.detach()
        out["torch-csr"] = csr
    return out


def _chosen(spike_input, x, x_grad: bool) -> str:
    """The path the layer's switch took for this input ("dense" where it stops before timing)."""
    made = spike_input.chooser().choices()
    density = round(float(x.mean()) / spike_input.DENSITY_BAND) * spike_input.DENSITY_BAND
    hits = [v for k, v in made.items() if k.startswith(f"spike_linear {x.shape[0]}x{x.shape[1]}->")
            and k.endswith(f"density {density:.2f}") and ("input gradient" in k) == x_grad]
    return hits[-1] if hits else "dense (above the cap)"


def _time(fns: dict, reps: int) -> dict:
    """Round-robin timing: {name: (wall ms list, cpu ms list)}; two warm-up calls each."""
    for f in fns.values():
        f()
        f()
    res = {k: ([], []) for k in fns}
    names = list(fns)
    for i in range(reps):
        for k in names[i % len(names):] + names[:i % len(names)]:  # rotate who runs first
            c, t = time.process_time(), time.perf_counter()
            fns[k]()
            res[k][0].append((time.perf_counter() - t) * 1e3)
            res[k][1].append((time.process_time() - c) * 1e3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.10, 0.28, 0.50])
    ap.add_argument("--rows", type=int, default=25 * 128)
    ap.add_argument("--n-in", type=int, default=784)
    ap.add_argument("--n-out", type=int, default=256)
    ap.add_argument("--x-grad", action="store_true", help="also the input gradient (a hidden layer)")
    ap.add_argument("--torch-csr", action="store_true", help="also torch's sparse CSR product")
    ap.add_argument("--no-fmnist", action="store_true")
    args = ap.parse_args()
    import numba
    import torch

    from spikeport.train import spike_input

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    torch.set_num_threads(args.threads)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} logical CPUs, threads {args.threads} (torch and numba), "
          f"Python {platform.python_version()}; torch {torch.__version__}, numba {numba.__version__}, "
          f"numpy {np.__version__}; numba threading layer (after first call) below")
    print(f"layer {args.n_in} -> {args.n_out}, {args.rows} rows, float32, forward + backward "
          f"(weight gradient{', input gradient' if args.x_grad else ''}); {args.reps} interleaved reps; "
          f"default: the measured choice below SPARSE_MAX_DENSITY = {spike_input.SPARSE_MAX_DENSITY} "
          f"({spike_input.SPARSE_MAX_DENSITY_GRAD} with the input gradient)")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    gen = torch.Generator().manual_seed(0)
    w = (torch.randn(args.n_out, args.n_in, generator=gen) * 0.05).requires_grad_()
    g = torch.randn(args.rows, args.n_out, generator=gen)
    inputs = [(f"{d:.0%}", (torch.rand(args.rows, args.n_in, generator=gen) < d).float()) for d in args.densities]
    real = None if args.no_fmnist else _fmnist_rate(args.rows, args.n_in)
    if real is not None:
        inputs.append(("fmnist-rate", torch.from_numpy(real)))
    head = ("| input | density | dense ms median (best) | sparse ms median (best) | dense / sparse median (best) |"
            " default: path | default ms median (best) | dense / default median |")
    head += " torch-csr ms median (best) |" if args.torch_csr else ""
    print(head + " CPU ms dense / sparse |")
    print("|" + "---|" * (head.count("|") + 0))
    for name, x in inputs:
        res = _time(_methods(torch, x, w, g, args.x_grad, args.torch_csr), args.reps)
        med = {k: statistics.median(v[0]) for k, v in res.items()}
        best = {k: min(v[0]) for k, v in res.items()}
        cpu_ms = {k: statistics.median(v[1]) for k, v in res.items()}
        row = (f"| {name} | {float(x.mean()):.3f} | {med['dense']:.2f} ({best['dense']:.2f}) | "
               f"{med['sparse']:.2f} ({best['sparse']:.2f}) | {med['dense'] / med['sparse']:.2f} "
               f"({best['dense'] / best['sparse']:.2f}) | {_chosen(spike_input, x, args.x_grad)} | "
               f"{med['default']:.2f} ({best['default']:.2f}) | {med['dense'] / med['default']:.2f} |")
        if args.torch_csr:
            row += f" {med['torch-csr']:.2f} ({best['torch-csr']:.2f}) |"
        print(row + f" {cpu_ms['dense']:.1f} / {cpu_ms['sparse']:.1f} |", flush=True)
    print(f"numba threading layer: {numba.threading_layer()}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
