"""A Rockpool network trained on digits-rows, exported by Rockpool (to_nir), imported onto Xylo Audio 2
(``spikeport import --target xylo-audio2``) and run on SynSense's xylosim and the emulator.

The network: LinearTorch(8, 64) -> LIFTorch(64) -> LinearTorch(64, 8) -> LIFTorch(8), dt 1 ms, leaks set to Xylo's
bit-shift factors (tau = -dt / ln(1 - 2**-dash): synapse dash 1, membrane dash 4 / 3), at most 31 spikes per step
in the hidden layer and one in the output layer (Rockpool's max_spikes_per_dt: Xylo's caps; NIR does not store
it, so spikeport's float reference reads Rockpool's default), trained with Rockpool's own surrogate gradient
(cross-entropy on output spike counts, Adam on the weights only, gradient norm clipped at 1) on the training split (feed-forward:
Rockpool 3.1.0's to_nir drops LIFTorch's recurrent weights, so a recurrent Rockpool net cannot be exported).

Prints the test accuracy of Rockpool's own float evolve, of spikeport's float reference of the NIR graph
(Rockpool's conventions), of Xylo's integers (xylosim), their prediction agreement, the approximations listed,
and the spike / state mismatches between xylosim and the emulator.

    .venv/bin/python benchmarks/xylo_rockpool_import.py [--epochs 30] [--out /tmp/xylo_rockpool]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path

import nir
import numpy as np
import torch

from spikeport.data import load_dataset
from spikeport.importer.xylo_import import import_xylo
from spikeport.pipeline import xylo_parity


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--out", default="/tmp/xylo_rockpool")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init-scale", type=float, default=0.5)
    args = ap.parse_args()
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(0)
    dt = 1e-3
    tau = lambda dash: -dt / np.log(1.0 - 2.0 ** -dash)  # noqa: E731
    net = Sequential(LinearTorch((8, 64)), LIFTorch(64, tau_mem=tau(4), tau_syn=tau(1), dt=dt, threshold=2.0,
                                                   max_spikes_per_dt=31),
                     LinearTorch((64, 8)), LIFTorch(8, tau_mem=tau(3), tau_syn=tau(1), dt=dt, threshold=2.0,
                                                    max_spikes_per_dt=1))
    with torch.no_grad():  # inputs are event counts up to 15: start from small weights (Rockpool's default
        for name, p in net.named_parameters():  # init drives every hidden neuron to its 31-spike cap)
            if "Linear" in name:
                p.mul_(args.init_scale)
    ds = load_dataset("digits-rows", n_bins=args.steps)
    xtr, ytr = torch.from_numpy(ds.x_train.astype(np.float32)), torch.from_numpy(ds.y_train)
    # the weights only: Rockpool trains taus, biases and thresholds by default, and its to_nir writes no bias
    weights = [p for name, p in net.named_parameters() if "Linear" in name]
    opt = torch.optim.Adam(weights, lr=args.lr)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(ytr))
        for i in range(0, len(ytr), 64):
            idx = perm[i:i + 64]
            net.reset_state()
            out, _, _ = net(xtr[idx])  # [B, T, 8] spike counts
            loss = torch.nn.functional.cross_entropy(out.sum(1), ytr[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            opt.step()
    with torch.no_grad():
        net.reset_state()
        rock = net(torch.from_numpy(ds.x_test.astype(np.float32)))[0].sum(1).argmax(1).numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nir.write(str(out / "rockpool.nir"), to_nir(net))
    np.save(out / "x_test.npy", ds.x_test.astype(np.float32))
    np.save(out / "y_test.npy", ds.y_test)
    info = import_xylo(out / "rockpool.nir", dt=dt, out=out / "run", producer="rockpool", allow_approx=True,
                       inputs=out / "x_test.npy", labels=out / "y_test.npy")
    res = xylo_parity.parity(out / "run", backend="xylo,emulator", min_agreement=0.0)
    print(f"Rockpool float (its own evolve): {np.mean(rock == ds.y_test):.2%}")
    print(f"spikeport float reference (Rockpool conventions): {res['float_accuracy']:.2%}")
    print(f"Xylo integers (xylosim): {res['comparisons'][0]['backend_accuracy']:.2%}; prediction agreement with "
          f"the float reference {res['prediction_agreement']:.2%}")
    print(f"xylosim vs emulator on {res['samples']} samples: {res['spike_mismatches']} spike-count mismatches, "
          f"states {res['state_mismatches']}")
    print("approximations: " + json.dumps([a["change"] for a in info["approximations"]]))
    print("versions: " + ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("rockpool", "xylosim", "torch")))


if __name__ == "__main__":
    main()
