"""The emulator against the machine's integer peak and against Lava, measured in one run.

For each network of ``lava_vs_emulator.py`` (784-128-10, 784-512-512-10, the conv net; T = 25, direct-
encoded mnist5k, random int8 weights, thresholds calibrated to ~0.08 spikes per neuron per step):

- emulator samples/s, its synaptic operations per second (NeuroBench count of ``measure.ops``:
  nonzero input events x nonzero fan-out, binary and graded inputs, per sample) and dense-equivalent
  MACs per second (T x the nonzero weights of every layer's unrolled matrix per sample: what a dense
  per-step evaluation multiplies);
- the machine's integer peak: an int32 GEMM of each layer's shape ([T*B, n_in] x [n_in, n_out] for
  dense layers, im2col [T*B*Ho*Wo, C/g*kh*kw] x [., C_out/g] per group for convolutions) with numpy
  (``np.matmul`` on int32) and with numba (a compiled i-k-j loop); the faster is the peak;
- Lava streaming samples/s (``lava_backend.run_network``, compile and read-back included) and the
  spike mismatches between Lava and the emulator on the Lava samples.

Rounds alternate the measurements (emulator, peak, Lava, per network) so that the shared machine's
load hits all of them alike; the median of the rounds is reported with ``os.getloadavg()``.

    PYTHONPATH=. .venv/bin/python benchmarks/emulator_peak.py [--rounds 3] [--emu-samples 2000]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lava_vs_emulator as lve  # noqa: E402

from spikeport.data import encode, load_dataset  # noqa: E402
from spikeport.deploy import emulator  # noqa: E402
from spikeport.measure import ops  # noqa: E402


def gemm_shapes(net, rows: int) -> list[tuple[int, int, int]]:
    """(M, K, N) int32 GEMMs doing each layer's dense-equivalent MACs for ``rows`` = T*B input rows."""
    out = []
    for pop in net.populations:
        c = pop.input
        if c.kind == "conv":
            c_out, c_grp, kh, kw = c.weight.shape
            _, ho, wo = c.out_shape
            out += [(rows * ho * wo, c_grp * kh * kw, c_out // c.groups)] * c.groups
        elif c.kind == "dense":
            out.append((rows, int(np.prod(c.pooled_shape)), c.shape[0]))
    return out


def _numba_gemm():
    import numba

    @numba.njit(cache=True, nogil=True)
    def gemm(a, b, c):  # c[i] += a[i, k] * b[k] (i-k-j: the inner loop is a contiguous int32 axpy)
        for i in range(a.shape[0]):
            for k in range(a.shape[1]):
                x = a[i, k]
                for j in range(b.shape[1]):
                    c[i, j] += x * b[k, j]
    return gemm


def peak_macs(shapes, rng, max_rows: int = 4096) -> dict[str, float]:
    """MACs/s of int32 GEMMs of ``shapes`` (rows capped at ``max_rows``: the rate per row is constant),
    numpy and numba; total MACs / total time over the layers."""
    gemm = _numba_gemm()
    res = {}
    for name in ("numpy", "numba"):
        macs, secs = 0, 0.0
        for m, k, n in shapes:
            m = min(m, max_rows)
            a = rng.integers(-127, 128, (m, k)).astype(np.int32)
            b = rng.integers(-127, 128, (k, n)).astype(np.int32)
            if name == "numba":
                c = np.zeros((m, n), np.int32)
                gemm(a[:2], b, c[:2])  # compile
                t0 = time.perf_counter()
                gemm(a, b, c)
            else:
                t0 = time.perf_counter()
                c = np.matmul(a, b)
            secs += time.perf_counter() - t0
            macs += m * k * n
        res[name] = macs / secs
    return res


def op_counts(net, x, spikes) -> tuple[float, float, float]:
    """(synaptic operations, of which spike-driven (binary input), dense-equivalent MACs) per sample."""
    layers, layer_in = [], x.reshape(x.shape[0], x.shape[1], -1)
    for i, (pop, out) in enumerate(zip(net.populations, spikes)):
        layers.append(ops.OpLayer(pop.name, pop.input.to_matrix(), layer_in, out, graded_input=i == 0 and net.graded_input))
        layer_in = out
    tot = ops.count_ops(layers)["totals"]
    dense = net.time_steps * sum(pop.input.to_matrix().nnz for pop in net.populations)
    return tot["synops"] + tot["effective_macs"], tot["synops"], float(dense)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--emu-samples", type=int, default=2000)
    ap.add_argument("--lava-samples", type=int, default=200)
    ap.add_argument("--lava-conv-samples", type=int, default=40)
    ap.add_argument("--no-lava", action="store_true", help="skip Lava (peak and emulator only)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    ds = load_dataset("mnist5k")
    x_all = encode(np.concatenate([ds.x_test, ds.x_train]), lve.T, "direct")
    nets = {"784-128-10": (lve.mlp([784, 128, 10]), args.lava_samples),
            "784-512-512-10": (lve.mlp([784, 512, 512, 10]), args.lava_samples),
            "conv 8c3-p2-16c3-p2-10": (lve.conv_net, args.lava_conv_samples)}
    built = {name: (lve.calibrated(spec, x_all[:, :64], 0.08, seed=1), n) for name, (spec, n) in nets.items()}
    x_emu = x_all[:, :args.emu_samples]
    meas = {name: {"emu": [], "numpy": [], "numba": [], "lava": [], "load": []} for name in built}
    counts, mism = {}, {}
    for name, (net, _) in built.items():  # warm-up (compiles) and op counts
        spikes = emulator.run(net, x_emu[:, :500]).spikes
        counts[name] = op_counts(net, x_emu[:, :500], spikes)
    for r in range(args.rounds):
        for name, (net, n_lava) in built.items():
            m = meas[name]
            m["load"].append(os.getloadavg()[0])
            t0 = time.perf_counter()
            emu = emulator.run(net, x_emu).spikes
            m["emu"].append(args.emu_samples / (time.perf_counter() - t0))
            pk = peak_macs(gemm_shapes(net, lve.T * args.emu_samples), rng)
            m["numpy"].append(pk["numpy"])
            m["numba"].append(pk["numba"])
            if not args.no_lava:
                from spikeport.deploy import lava_backend

                t0 = time.perf_counter()
                lava = lava_backend.run_network(net, x_all[:, :n_lava], record="all")
                m["lava"].append(n_lava / (time.perf_counter() - t0))
                mism[name] = sum(int((e[:, :n_lava] != lv).sum()) for e, lv in zip(emu, lava))
            print(f"round {r}: {name}: emulator {m['emu'][-1]:.0f}/s, peak numpy {pk['numpy'] / 1e9:.2f} "
                  f"numba {pk['numba'] / 1e9:.2f} GMAC/s" + (f", Lava {m['lava'][-1]:.1f}/s" if m["lava"] else ""),
                  flush=True)
    report(built, meas, counts, mism, args)
    return 0


def report(built, meas, counts, mism, args) -> None:
    import numba
    import scipy
    import torch

    med = {name: {k: (statistics.median(v) if v else float("nan")) for k, v in m.items()} for name, m in meas.items()}
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"\nmachine: {cpu}, {os.cpu_count()} CPUs, {platform.platform()}; numpy {np.__version__}, "
          f"numba {numba.__version__}, scipy {scipy.__version__}, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    print(f"median of {args.rounds} alternating rounds; emulator {args.emu_samples} samples, T = {lve.T}")
    print("\n| network | emulator samples/s | SynOps/sample | emulator GSynOps/s | dense-eq. MACs/sample | "
          "emulator GMACs/s | int32 peak GMAC/s (numpy / numba) | SynOps % of peak | spike SynOps/s % of peak | "
          "MACs % of peak | "
          "Lava samples/s | emulator / Lava | mismatches | load avg (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for name, m in med.items():
        syn, spk, dense = counts[name]
        peak = max(m["numpy"], m["numba"])
        which = "numba" if m["numba"] >= m["numpy"] else "numpy"
        print(f"| {name} | {m['emu']:.0f} | {syn / 1e6:.2f}M | {syn * m['emu'] / 1e9:.2f} | {dense / 1e6:.2f}M | "
              f"{dense * m['emu'] / 1e9:.2f} | {m['numpy'] / 1e9:.2f} / {m['numba'] / 1e9:.2f} ({which}) | "
              f"{100 * syn * m['emu'] / peak:.0f}% | {100 * spk * m['emu'] / peak:.0f}% | {100 * dense * m['emu'] / peak:.0f}% | {m['lava']:.1f} | "
              f"{m['emu'] / m['lava']:.0f}x | {mism.get(name, '-')} | "
              f"{', '.join(f'{v:.1f}' for v in meas[name]['load'])} |")


if __name__ == "__main__":
    sys.exit(main())
