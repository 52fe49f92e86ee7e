"""Figures for docs/nir_peers.md: a braille-style recurrent snnTorch net, trained with a same-step reset,
imported with ``--reset-timing same-step`` and deployed without ``--allow-approx``.

The network is the NIR paper's braille ``model_build`` (``paper/03_rnn``: 12 taxels -> Linear -> RSynaptic
(38, all-to-all recurrence, alpha 0.55, beta 0.9, reset to zero, reset_delay=False) -> Linear -> Synaptic
(7, alpha 0.5, beta 0.55), every Linear with a bias). The braille recordings are not shipped, so it is
trained here on a synthetic 7-class tactile task (each letter: its own taxels sweeping in time, with
Poisson noise; T = 64 steps). snnTorch 1.0.0's RSynaptic does not reset in the spike's step, so the
network is trained (surrogate BPTT) and simulated as the build that trained the paper's graphs did:
snnTorch's own ``Synaptic(reset_delay=False)`` fed ``fc1(x) + recurrent(spikes of the previous step)``,
the RSynaptic's recurrent Linear. It is exported with snnTorch's ``export_to_nir`` (RSynaptic module).

Printed: float reference vs producer (spike agreement, both layers), integer (emulator) vs producer
(prediction agreement, accuracy), the same under the default timing (RSynaptic as released, needs
--allow-approx), and Lava vs emulator spike mismatches (``--lava``).

Usage: ``python benchmarks/braille_import.py [--lava] [--epochs 40]``
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_import_semantics import BrailleNet  # noqa: E402  (the model_build network, one definition)

T, CLASSES = 64, 7


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, n, 12] float 0/1 taxel events and [n] labels: class c sweeps taxels (2c .. 2c+5) mod 12 at
    a class-specific speed, plus background events."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = (rng.random((T, n, 12)) < 0.02).astype(np.float32)
    for i, c in enumerate(y):
        speed = 4 + c % 3
        start = rng.integers(0, 8)
        for k in range(6):
            t0 = start + k * speed
            taxel = (2 * c + k) % 12
            x[t0:t0 + 6, i, taxel] = (rng.random(len(range(t0, min(T, t0 + 6)))) < 0.7)
    return x, y


def same_step_run(net: BrailleNet, x: torch.Tensor):
    """Hidden and output spikes with the same-step reset (snnTorch Synaptic modules, differentiable)."""
    return net.same_step(x)


def train(net: BrailleNet, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    import snntorch as snn
    from snntorch import functional as SF

    hidden = snn.Synaptic(alpha=torch.full((38,), 0.55), beta=torch.full((38,), 0.9), threshold=torch.ones(38),
                          reset_mechanism="zero", reset_delay=False)
    loss_fn = SF.ce_count_loss()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[1])
        for lo in range(0, x.shape[1], 64):
            idx = perm[lo:lo + 64]
            xb, B = xt[:, idx], len(idx)
            spk1, syn1, mem1 = (torch.zeros(B, 38) for _ in range(3))
            syn2, mem2 = torch.zeros(B, 7), torch.zeros(B, 7)
            out = []
            for t in range(T):
                spk1, syn1, mem1 = hidden(net.fc1(xb[t]) + net.lif1.recurrent(spk1), syn1, mem1)
                spk2, syn2, mem2 = net.lif2(net.fc2(spk1), syn2, mem2)
                out.append(spk2)
            loss = loss_fn(torch.stack(out), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: loss {loss.item():.3f}", flush=True)


def main() -> None:
    from snntorch.export_nir import export_to_nir

    from spikeport import pipeline
    from spikeport.deploy import emulator
    from spikeport.importer.run import import_graph
    from spikeport.nirfmt.load import load_nir

    ap = argparse.ArgumentParser()
    ap.add_argument("--lava", action="store_true")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    torch.manual_seed(0)
    x_tr, y_tr = make_data(700, 0)
    x_te, y_te = make_data(280, 1)
    net = BrailleNet()
    train(net, x_tr, y_tr, args.epochs)
    with torch.no_grad():
        hid, out = (a.numpy() for a in net.same_step(torch.from_numpy(x_te)))
    prod_pred = out.sum(0).argmax(1)
    print(f"snnTorch (same-step) test accuracy {np.mean(prod_pred == y_te):.2%}")
    tmp = Path(tempfile.mkdtemp(prefix="braille-"))
    nir.write(str(tmp / "braille.nir"), export_to_nir(net, torch.zeros(1, 12), ignore_dims=[0]))
    np.save(tmp / "x.npy", x_te.transpose(1, 0, 2))
    np.save(tmp / "y.npy", y_te)
    for timing, approx in (("same-step", False), (None, True)):
        run = tmp / f"run-{timing}"
        info = import_graph(tmp / "braille.nir", dt=1e-4, out=run, producer="snntorch", reset="zero",
                            reset_timing=timing, allow_approx=approx, inputs=tmp / "x.npy")
        from spikeport.importer.run import load_source, reference

        fg, prod, dt, _ = load_source(run)
        spikes, ref_pred = reference(fg, prod, dt, x_te, ["lif1.lif", "lif2"])
        float_agree = [float(np.mean(s == (p > 0))) for s, p in zip(spikes, (hid, out))]
        int_pred = emulator.run(load_nir(run / "model.nir"), np.rint(x_te).astype(np.int64)).output_counts().argmax(1)
        print(f"--reset-timing {timing or 'default'}: exact={info['exact']}, approximations "
              f"{[a['issue'][:40] for a in info['approximations']]}")
        print(f"  float reference vs snnTorch: spike agreement hidden {float_agree[0]:.4%}, output "
              f"{float_agree[1]:.4%}; prediction agreement {np.mean(ref_pred == prod_pred):.2%}")
        print(f"  integers vs snnTorch: prediction agreement {np.mean(int_pred == prod_pred):.2%}, accuracy "
              f"{np.mean(int_pred == y_te):.2%} (float reference {np.mean(ref_pred == y_te):.2%})")
        print(f"  layers: {[(l['weight_rel_error'], l.get('bias_line')) for l in info['layers']]}")
        if args.lava and timing == "same-step":
            res = pipeline.parity(run, backend="lava,emulator", min_agreement=0.0)
            print(f"  Lava vs emulator spike mismatches: {res['comparisons'][-1]['spike_mismatches']} "
                  f"({res['samples']} samples)")


if __name__ == "__main__":
    main()
