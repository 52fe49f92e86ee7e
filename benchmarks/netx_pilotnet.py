"""An imported PilotNet-sized sigma-delta network: spikeport's emulator against netx itself on Lava.

The network is made by lava-dl's slayer (random weights, 8-bit quantized as slayer exports them) and
written with slayer's own ``export_hdf5``, PilotNet's shape with sigma-delta neurons: input 3x33x100
(``sigma_delta.Input``), 5 conv blocks (24@3x3 s2, 36@3x3 s2, 48@3x3 s(2,1) p(1,0), 64@3x3 p1, 64@3x3),
flatten, 4 dense blocks (100, 50, 10, and a 1-neuron Sigma ``Output``: a regression value per step).
Inputs: frames 0..255 that move by at most one pixel per step (``tests.slayer_nets.moving``), T steps.

Both sides run the file spikeport imported (``spikeport import``): netx on Lava ``Loihi2SimCfg(select_tag=
"fixed_pt")`` in spikeport's supervised child (each sample alone from a zeroed network, as parity runs it),
and the emulator (all samples batched). Prints seconds per sample of each, their ratio (measured in the
same run), the payload / value mismatches between the two on the netx samples, the machine and versions.

    .venv/bin/python benchmarks/netx_pilotnet.py [--netx-samples 4] [--emu-samples 64] [--steps 16]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = (3, 33, 100)


def pilotnet_sdnn(path: Path, seed: int = 0) -> None:
    from tests.slayer_nets import sdnn

    sdnn(path, SHAPE, [(24, 3, 2, 0), (36, 3, 2, 0), (48, 3, (2, 1), (1, 0)), (64, 3, 1, 1), (64, 3, 1, 0)],
         [100, 50, 10, 1], seed)


def versions() -> str:
    import importlib.metadata as md

    names = ["numpy", "numba", "torch", "lava-nc", "lava-dl"]
    return ", ".join(f"{n} {md.version(n)}" for n in names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--netx-samples", type=int, default=4)
    ap.add_argument("--emu-samples", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16)
    args = ap.parse_args()
    from spikeport.deploy import emulator
    from spikeport.deploy.supervise import run_netx
    from spikeport.importer.netx_import import import_netx
    from spikeport.nirfmt.runnet import load_run
    from tests.slayer_nets import moving

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pilotnet_sdnn(tmp / "pilotnet.net")
        n = max(args.netx_samples, args.emu_samples)
        np.save(tmp / "x.npy", moving(SHAPE, n, args.steps, seed=1))
        import_netx(tmp / "pilotnet.net", tmp / "run", inputs=tmp / "x.npy")
        net = load_run(tmp / "run")
        x = np.swapaxes(np.load(tmp / "x.npy"), 0, 1)
        emulator.run(net, x[:, :2])  # compile the kernels once, outside the timing
        t0 = time.perf_counter()
        emu = emulator.run(net, x[:, :args.emu_samples])
        emu_s = (time.perf_counter() - t0) / args.emu_samples
        t0 = time.perf_counter()
        spikes, values = run_netx(tmp / "run" / "source.net", x[:, :args.netx_samples], with_values=True,
                                  timeout_s=3600)
        netx_s = (time.perf_counter() - t0) / args.netx_samples
        ref = emulator.run(net, x[:, :args.netx_samples])
        mism = sum(int((np.asarray(a, np.int64) != np.asarray(b, np.int64)).sum()) for a, b in zip(ref.spikes, spikes))
        vmism = int((ref.values != values).sum())
    msgs = [float(np.count_nonzero(s)) / (args.emu_samples * args.steps) for s in emu.spikes]
    print(f"network {net.describe()}, T={args.steps}, blocks {[p.kind for p in net.populations]}")
    print(f"messages per step per sample, by block: {[round(m, 1) for m in msgs]}")
    print(f"netx on Lava (fixed_pt, supervised child, {args.netx_samples} samples): {netx_s:.3f} s/sample")
    print(f"emulator ({args.emu_samples} samples, {emulator.threads()} threads): {emu_s * 1e3:.2f} ms/sample")
    print(f"ratio emulator / netx-on-Lava: {netx_s / emu_s:.0f}x (same run)")
    print(f"mismatches emulator vs netx: payloads {mism}, output values {vmism}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python "
          f"{platform.python_version()}; {versions()}")
    return 0 if mism == 0 and vmism == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
