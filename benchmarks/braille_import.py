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

The import is given the 700 training samples as ``--inputs`` (its default calibration: 256 of them; it
scores the other 444); every figure printed is measured on the 280 test samples, which neither the
calibration nor fine-tuning sees. Printed: float reference vs producer (spike agreement, both layers),
integer (emulator) vs producer (prediction agreement, accuracy), the same under the default timing
(RSynaptic as released, needs --allow-approx), and Lava vs emulator spike mismatches (``--lava``). With
``--finetune N``: the exact import fine-tuned N epochs on Loihi integers (``--target producer``; its bias
lines stay bias lines) on all 700 training samples (``--holdout 0``), measured on the 280 test samples:
agreement with snnTorch and accuracy before / after, and (``--lava``) Lava vs emulator vs the
checkpoint's integer forward.

With ``--weight-bits 16`` the exact (same-step) import gives its dense, recurrent and line weights 16 bits
(two Loihi synapses per weight, ``spikeport import --weight-bits 16``) and fine-tuning keeps them.

Usage: ``python benchmarks/braille_import.py [--lava] [--netx] [--epochs 40] [--weight-bits 8|16] [--finetune N
[--ft-lr LR ...] [--keep best|last]]``
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


def test_predictions(run: Path, x_te: np.ndarray) -> np.ndarray:
    """The run's model.nir on the emulator (= Lava, tested) over the test samples x_te [T, N, 12]: [N]."""
    from spikeport.deploy import emulator
    from spikeport.nirfmt.load import load_nir

    return emulator.run(load_nir(run / "model.nir"), np.rint(x_te).astype(np.int64)).output_counts().argmax(1)


def finetune(run: Path, tmp: Path, data: dict, args) -> None:
    """Fine-tune the exact (same-step) import on Loihi integers against snnTorch's predictions on all 700
    training samples (the import's 256 calibration and 444 scored ones; ``--holdout 0``); one fine-tuned
    run per ``--ft-lr``. Printed per run, on the 280 test samples: before / after agreement with
    snnTorch's own predictions, accuracy, what model.nir holds, the training-sample score per epoch, and
    (``--lava``) Lava vs emulator vs the checkpoint's integer forward."""
    import json

    from spikeport import pipeline
    from spikeport.importer.finetune import finetune_run
    from spikeport.nirfmt.load import load_nir

    x_tr, _ = data["train"]
    noise_floor(run, x_tr)
    x_te, y_te, prod_pred = data["test"]
    before = test_predictions(run, x_te)
    for lr in args.ft_lr:
        out = tmp / f"run-finetuned-lr{lr:g}"
        res = finetune_run(run, epochs=args.finetune, out=out, target="producer", lr=lr, seed=args.ft_seed,
                           keep=args.keep, holdout=0.0)
        net = load_nir(out / "model.nir")
        pred = test_predictions(out, x_te)
        saved = json.loads((out / "import.json").read_text())
        print(f"fine-tuned --finetune {args.finetune} --target producer --lr {lr:g} --keep {args.keep} (seed "
              f"{args.ft_seed}, {res['train_samples']} trained, {res['train_seconds']:.0f} s; kept epoch "
              f"{res['history'][-1]['kept_epoch']}): exact={saved['exact']}, approximations "
              f"{len(saved['approximations'])}, bias lines {res['bias_lines']}, voltage biases "
              f"{[int(np.count_nonzero(p.lif.bias_mant)) for p in net.populations]}")
        print(f"  test samples, integers vs snnTorch predictions: {np.mean(before == prod_pred):.2%} -> "
              f"{np.mean(pred == prod_pred):.2%}; accuracy {np.mean(before == y_te):.2%} -> {np.mean(pred == y_te):.2%} "
              f"(snnTorch {np.mean(prod_pred == y_te):.2%})")
        print(f"  training-sample agreement per epoch (0: the start): "
              f"{[round(h['train_score'], 4) for h in res['history'] if 'train_score' in h]}")
        if args.lava:
            par = pipeline.parity(out, backend="lava,emulator", inputs=tmp / "x.npy", labels=tmp / "y.npy")
            print(f"  parity on the test samples: Lava / emulator / checkpoint integer forward spike mismatches "
                  f"{par['spike_mismatches']} ({par['samples']} samples, pairs {par['spike_pairs']}); producer "
                  f"agreement {par['producer_agreement']:.2%}; passed {par['passed']}")


def _float_module(run: Path, x: np.ndarray):
    """(the fine-tuning module of the run's source graph, float; snnTorch's predictions on x; the integer step
    of each weight tensor: weight scale, recurrent weight scale, line quantum)."""
    from spikeport.importer import finetune_net, lower
    from spikeport.importer.run import load_source, reference

    fg, prod, dt, info = load_source(run)
    plans = lower.lower(fg, prod, dt).layers
    spikes, t_pred = reference(fg, prod, dt, x, [p.name for p in plans])
    model = finetune_net.build([finetune_net.arch_of(p, 1.0, 1, r) for p, r in zip(plans, info["layers"])],
                               fg.input_shape)
    finetune_net.init_from(model, plans)
    step = {}
    for i, layer in enumerate(model.layers):
        lq = layer.quant()
        step[f"layers.{i}.weight"] = lq.weight_scale
        step[f"layers.{i}.line"] = lq.state_scale * 2.0 ** layer.bias_line(lq).weight_exp
        if layer.arch.recurrent:
            step[f"layers.{i}.weight_rec"] = layer.quant_recurrent(lq)[2]
    return model, (spikes, t_pred), step


def _perturbed(base: dict, step: dict, frac: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: v + (torch.rand(v.shape, generator=g) - 0.5) * 2 * frac * step[k] if k in step else v
            for k, v in base.items()}


def noise_floor(run: Path, x: np.ndarray, fracs=(0.5, 0.25, 0.1), seeds: int = 4, recover_epochs: int = 6) -> None:
    """How sensitive the producer's own float network is: its lowered layers (the fine-tuning module, no
    quantization) with every weight, recurrent weight and bias-line current moved by uniform noise of
    +-frac of its integer step (the run's int8 or 16-bit grid; rounding is +-0.5): agreement with the
    unperturbed network's predictions on x [T, N, 12], one figure per seed. Then, from the +-0.5 start of seed 0, ``recover_epochs`` of
    fine-tuning's own training step in float (no quantization: fine-tuning's loss and optimizer, lr 5e-4)
    distilling the unperturbed network: agreement per epoch."""
    from spikeport.core.readout import predict
    from spikeport.importer import finetune

    model, (spikes, t_pred), step = _float_module(run, x)
    base, xf = {k: v.clone() for k, v in model.state_dict().items()}, torch.from_numpy(x)
    agreement = lambda: float(np.mean(predict(model(xf)[-1].detach().numpy() > 0, {}) == t_pred))  # noqa: E731
    for frac in fracs:
        agree = []
        for seed in range(seeds):
            model.load_state_dict(_perturbed(base, step, frac, seed))
            agree.append(agreement())
        print(f"  producer's float net, weights +- {frac} integer step of noise: agreement with itself "
              f"{', '.join(f'{a:.2%}' for a in agree)} ({x.shape[1]} training samples)")
    model.load_state_dict(_perturbed(base, step, 0.5, 0))
    opt, rng = finetune._optimizer(model, 5e-4), np.random.default_rng(0)
    teach = [torch.from_numpy(s.astype(np.float32)) for s in spikes]
    curve = [agreement()]
    for _ in range(recover_epochs):
        order = rng.permutation(x.shape[1])
        for lo in range(0, x.shape[1], 64):
            idx = torch.from_numpy(order[lo:lo + 64])
            yb = torch.from_numpy(t_pred[idx.numpy()])
            loss = finetune._loss(model(xf[:, idx]), "producer", yb, [s[:, idx] for s in teach], yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        curve.append(agreement())
    print(f"  float distillation back from +- 0.5 step (fine-tuning's loss, lr 5e-4, no quantization): agreement "
          f"per epoch {', '.join(f'{a:.2%}' for a in curve)}")


def compare_imports(tmp: Path, data: dict, hid: np.ndarray, out: np.ndarray, lava: bool, bits: int = 8,
                    netx: bool = False) -> Path:
    """Import under both timings (and, with ``netx``, same-step quantized for lava-dl's netx: ``import
    --netx --allow-approx``, its biases as voltage biases) and print the figures; returns the same-step
    (exact) run folder."""
    from spikeport import pipeline
    from spikeport.importer.run import import_graph, load_source, reference

    x_te, y_te, prod_pred = data["test"]
    kinds = [("same-step", False, False), (None, True, False)] + ([("same-step", True, True)] if netx else [])
    for timing, approx, for_netx in kinds:
        run = tmp / f"run-{timing}{'-netx' if for_netx else ''}"
        labels = tmp / "ytr.npy" if timing else None  # labels make the default timing refused (by design)
        info = import_graph(tmp / "braille.nir", dt=1e-4, out=run, producer="snntorch", reset="zero",
                            reset_timing=timing, allow_approx=approx, inputs=tmp / "xtr.npy", labels=labels,
                            weight_bits=bits if timing and not for_netx else 8, netx=for_netx)
        fg, prod, dt, _ = load_source(run)
        spikes, ref_pred = reference(fg, prod, dt, x_te, ["lif1.lif", "lif2"])
        float_agree = [float(np.mean(s == (p > 0))) for s, p in zip(spikes, (hid, out))]
        int_pred = test_predictions(run, x_te)
        print(f"--reset-timing {timing or 'default'}{' --netx' if for_netx else ''} (--weight-bits "
              f"{info['weight_bits']['option']}; calibrated on "
              f"{len(info['samples']['calibration_indices'])} training samples): "
              f"exact={info['exact']}, approximations "
              f"{[a['issue'][:40] for a in info['approximations']]}")
        print(f"  float reference vs snnTorch: spike agreement hidden {float_agree[0]:.4%}, output "
              f"{float_agree[1]:.4%}; prediction agreement {np.mean(ref_pred == prod_pred):.2%}")
        print(f"  integers vs snnTorch: prediction agreement {np.mean(int_pred == prod_pred):.2%}, accuracy "
              f"{np.mean(int_pred == y_te):.2%} (float reference {np.mean(ref_pred == y_te):.2%})")
        print(f"  layers: {[(l['weight_rel_error'], l.get('bias_line')) for l in info['layers']]}")
        if lava and timing == "same-step":
            if for_netx:
                from spikeport.export.netx_export import export_netx

                export_netx(run / "model.nir", run / "model.net")
            backend = "netx,emulator" if for_netx else "lava,emulator"
            res = pipeline.parity(run, backend=backend, min_agreement=0.0, inputs=tmp / "x.npy")
            print(f"  {backend}: spike mismatches {res['comparisons'][-1]['spike_mismatches']} "
                  f"({res['samples']} test samples)")
    return tmp / "run-same-step"


def main() -> None:
    from snntorch.export_nir import export_to_nir

    ap = argparse.ArgumentParser()
    ap.add_argument("--lava", action="store_true")
    ap.add_argument("--epochs", type=int, default=40, help="snnTorch training epochs")
    ap.add_argument("--finetune", type=int, default=0, help="fine-tune the exact import on Loihi integers (epochs)")
    ap.add_argument("--ft-lr", type=float, nargs="+", default=[2e-3], help="fine-tuning learning rate(s)")
    ap.add_argument("--ft-seed", type=int, default=0)
    ap.add_argument("--weight-bits", type=int, choices=(8, 16), default=8, help="the exact import's weight bits")
    ap.add_argument("--keep", choices=("best", "last"), default="best", help="fine-tuning: which epoch to keep")
    ap.add_argument("--netx", action="store_true", help="also import for lava-dl's netx (voltage biases)")
    args = ap.parse_args()
    torch.manual_seed(0)
    from spikeport.nirfmt import guard

    guard.READ_TIMEOUT_S = max(guard.READ_TIMEOUT_S, 120.0)  # a loaded machine: the isolated read may be slow
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
    np.save(tmp / "xtr.npy", x_tr.transpose(1, 0, 2))
    np.save(tmp / "ytr.npy", y_tr)
    data = {"train": (x_tr, y_tr), "test": (x_te, y_te, prod_pred)}
    run = compare_imports(tmp, data, hid, out, args.lava, args.weight_bits, args.netx)
    if args.finetune:
        finetune(run, tmp, data, args)


if __name__ == "__main__":
    main()
