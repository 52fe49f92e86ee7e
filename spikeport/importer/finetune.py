"""Fine-tuning an imported graph on Loihi integers (``spikeport import ... --finetune EPOCHS``,
``spikeport train --from RUN``).

Post-training quantization of a peer's graph loses predictions where Loihi's integers move spikes
(recurrent and conv graphs most). Fine-tuning starts from the lowered float layers of the run's
``source.nir`` (:func:`spikeport.importer.lower.lower` under the conventions in ``import.json``; the
producer's network in Loihi's form, so the starting point is the producer's own weights) as
spikeport training modules (:mod:`spikeport.importer.finetune_net`), trains them with QAT and
surrogate BPTT, and writes the result as a normal run. A layer's bias line (a constant current into
u, exact on Loihi) stays a bias line: a trained weight on an always-on input, quantized as the import
quantizes it and exported as the same line (``bias_lines`` in the result names those layers):

* ``target="labels"``: cross-entropy of the output spike counts against the labels;
* ``target="producer"`` (distillation; the default without labels): cross-entropy against the
  producer's float predictions (``importer.run.reference``: the float simulation of source.nir with
  the producer's conventions) plus the squared difference of every layer's spike trains from the
  producer's (per neuron and step), so predictions *and* ties follow the producer's.

Samples: the run's samples (the import's calibration samples, ``calibration_inputs.npy``, and the
samples it scored, ``inputs.npy``) are split once (seeded) into a training part (``train_inputs.npy`` /
``train_labels.npy``: every calibration sample and the rest of the scored ones) and a held-out part,
drawn from the scored samples only, which becomes the run's ``inputs.npy`` / ``labels.npy``: parity and
the report then measure on samples neither the import's calibration nor fine-tuning saw. A run that
was already fine-tuned keeps its split and continues from its checkpoint. ``keep="best"``
keeps the epoch whose integer network does best on the training part (accuracy with labels as
target, else agreement with the producer; the start counts as epoch 0), ``keep="last"`` the last
epoch (with ``schedule="cosine"``, whose learning rate falls to 0 over the run, the last epoch is the
settled one; the best training-part epoch then tends to be an earlier, noisier one). Neither looks at
the held-out samples. ``import.json`` gains ``finetune``: the settings, and before / after (the run's
``model.nir`` as it was, and the fine-tuned one) prediction agreement with the producer, integer and
producer accuracy on the held-out samples; the fine-tuned module's integer forward is checked equal
to the emulator on ``model.nir``, spike for spike, before anything is written. Predictions follow the
run's readout (``spikeport import --readout``): with ``current_sum`` they are read from the output
population's summed current of the network the module's integers make; the loss stays on spike counts.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import nir
import numpy as np
import torch
import torch.nn.functional as F

from spikeport.core.readout import needs_current, predict, predict_net
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.importer import finetune_net, lower, runio
from spikeport.importer.quantize import InputSpec
from spikeport.importer.run import build_graph, load_source, reference
from spikeport.nirfmt.load import load_nir, meta_value, to_loihi_net

TARGETS = ("auto", "labels", "producer")
SCHEDULES = ("constant", "cosine")  # learning rate over the batches: fixed, or cosine-annealed to 0
KEEPS = ("best", "last")  # parameters kept: the best epoch on the training part, or the last epoch
GRADED_MAX = 255  # largest graded input integer (importer.quantize.input_spec's levels)
Progress = Callable[[str, int, int], None]


def _load(run_dir: Path, net, inputs: str, labels: str):
    """(x [T, N, ...] float, labels [N] or None) from the run folder's ``inputs`` / ``labels`` files."""
    lab = run_dir / labels
    return runio.load_inputs(run_dir / inputs, lab if lab.is_file() else None, net.input_shape, net.time_steps)


def _split(run_dir: Path, net, holdout: float, seed: int, info: dict):
    """((x_train, y_train), (x_test, y_test), samples): floats [T, N, ...], labels [N] or None, and which
    samples of the import's ``--inputs`` each part holds (module docstring)."""
    if (run_dir / runfolder.TRAIN_INPUTS).is_file():
        train = _load(run_dir, net, runfolder.TRAIN_INPUTS, runfolder.TRAIN_LABELS)
        return train, _load(run_dir, net, runfolder.INPUTS, runfolder.LABELS), \
            (info.get("finetune") or {}).get("samples")
    x, y = _load(run_dir, net, runfolder.INPUTS, runfolder.LABELS)
    cal = (run_dir / runfolder.CALIBRATION_INPUTS).is_file()
    xc, yc = _load(run_dir, net, runfolder.CALIBRATION_INPUTS, runfolder.CALIBRATION_LABELS) if cal else (x[:, :0], None)
    n_sc, n = x.shape[1], x.shape[1] + xc.shape[1]
    n_test = int(round(holdout * n))
    if n - n_test < 1 or (holdout > 0 and n_test < 1):
        raise SpikeportError(f"{run_dir / runfolder.INPUTS}: {n} samples cannot be split with --holdout {holdout:g}")
    if n_test > n_sc:
        raise SpikeportError(f"{run_dir}: --holdout {holdout:g} holds out {n_test} of {n} samples, but only {n_sc} "
                             "were not calibrated on; lower --holdout or import with a smaller --calibration")
    order = np.random.default_rng(seed).permutation(n_sc)
    te, rest = np.sort(order[:n_test]), np.sort(order[n_test:])
    x_tr = np.concatenate([xc, x[:, rest]], axis=1)
    y_tr = None if y is None else np.concatenate([yc if yc is not None else y[:0], y[rest]])
    rec = info.get("samples") or {}
    sc_idx = np.asarray(rec.get("scored_indices", np.arange(n_sc)), np.int64)
    cal_idx = np.asarray(rec.get("calibration_indices", []), np.int64)
    samples = {"indices_of": rec.get("inputs", f"the run's {runfolder.INPUTS}"), "seed": seed,
               "train_indices": [int(i) for i in np.concatenate([cal_idx, sc_idx[rest]])],
               "heldout_indices": [int(i) for i in sc_idx[te]]}
    return (x_tr, y_tr), ((x[:, te], None if y is None else y[te]) if n_test else (x_tr, y_tr)), samples


def _predictions(model, x_int: np.ndarray, readout: Callable | None = None,
                 batch: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:
    """Integer forward of the module: (predictions [B], spikes per layer [T, B, N] bool). ``readout(model,
    x_int, spikes)`` -> predictions (default: output spike counts)."""
    outs = []
    with torch.no_grad():
        for lo in range(0, x_int.shape[1], batch):
            outs.append([s.numpy() for s in model.forward_int(torch.from_numpy(x_int[:, lo:lo + batch]))])
    spikes = [np.concatenate([o[i] for o in outs], axis=1) for i in range(len(outs[0]))]
    return (predict(spikes[-1], {}) if readout is None else readout(model, x_int, spikes)), spikes


def _figures(pred: np.ndarray, teacher: np.ndarray, y, teacher_pred_acc: bool = True) -> dict:
    out = {"prediction_agreement": float(np.mean(pred == teacher))}
    if y is not None:
        out["integer_accuracy"] = float(np.mean(pred == y))
        if teacher_pred_acc:
            out["producer_accuracy"] = float(np.mean(teacher == y))
    return out


def _loss(outs: list[torch.Tensor], target: str, yb, t_spikes, t_pred) -> torch.Tensor:
    counts = outs[-1].sum(0)
    if target == "labels":
        return F.cross_entropy(counts, yb)
    match = sum(((o - s) ** 2).mean() for o, s in zip(outs, t_spikes)) / len(outs)
    return F.cross_entropy(counts, t_pred) + match


def _optimizer(model, lr: float) -> torch.optim.Optimizer:
    """Adam with each tensor's step relative to its own magnitude (producers' weights come in any units):
    lr * max|w| for weights, lr * theta for a bias."""
    groups = []
    for layer in model.layers:
        for name, p in layer.named_parameters(recurse=False):
            scale = layer.spec.theta if name == "bias" else float(p.detach().abs().max()) or layer.spec.theta
            groups.append({"params": [p], "lr": lr * scale})
    return torch.optim.Adam(groups)


def train_module(model, xf_tr: torch.Tensor, x_int_tr: np.ndarray, target: str, y_tr, teacher: tuple, *,
                 epochs: int, lr: float, batch_size: int, seed: int, tick, schedule: str = "constant",
                 keep: str = "best", readout: Callable | None = None) -> list[dict]:
    """QAT + surrogate BPTT on the training samples (xf [T, N, ...] float = x_int * unit); the learning
    rate per ``schedule``, the parameters per ``keep`` (module docstring). Returns the history, one row
    per epoch (0: the start), then ``{"kept_epoch": E}``."""
    t_spikes, t_pred = teacher
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = _optimizer(model, lr)
    n = xf_tr.shape[1]
    steps = (n + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps) if schedule == "cosine" else None
    goal = y_tr if target == "labels" else t_pred
    history, best = [], None
    for epoch in range(epochs + 1):
        if epoch:
            model.train()
            order, losses = rng.permutation(n), []
            for b in range(steps):
                idx = torch.from_numpy(order[b * batch_size:(b + 1) * batch_size])
                outs = model(xf_tr[:, idx], qat=True)
                yb = torch.from_numpy(goal[idx.numpy()])
                loss = _loss(outs, target, yb, [s[:, idx] for s in t_spikes], yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                losses.append(loss.item())
                tick((epoch - 1) * steps + b + 1, epochs * steps)
        model.eval()
        pred, _ = _predictions(model, x_int_tr, readout)
        score = float(np.mean(pred == goal))
        history.append({"epoch": epoch, "train_score": score, **({"loss": float(np.mean(losses))} if epoch else {})})
        if (epoch == epochs) if keep == "last" else (best is None or score > best[0]):
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    history.append({"kept_epoch": best[1]})
    return history


def _start(run_dir: Path, archs: list, input_shape: tuple, plans: list):
    """(module, what it starts from): a fine-tuned run's checkpoint, else the lowered source layers."""
    if finetune_net.is_finetuned(run_dir):
        model, _ = finetune_net.load(run_dir)
        if [layer.arch for layer in model.layers] != archs:
            raise SpikeportError(f"{run_dir / runfolder.CONFIG}: its layers differ from {runio.SOURCE}'s lowering "
                                 f"(e.g. a checkpoint from before bias lines were kept; import {runio.SOURCE} again)")
        return model, "the run's fine-tuned checkpoint"
    model = finetune_net.build(archs, input_shape)
    finetune_net.init_from(model, plans)
    return model, f"the producer's weights ({runio.SOURCE})"


def finetune_run(run_dir: str | Path, *, epochs: int, out: str | Path | None = None, target: str = "auto",
                 holdout: float = 0.2, lr: float = 2e-3, batch_size: int = 64, seed: int = 0,
                 schedule: str = "constant", keep: str = "best", progress: Progress | None = None) -> dict:
    """Fine-tune the imported run ``run_dir`` (see the module docstring) into ``out`` (default: in place);
    returns import.json's ``finetune`` entry."""
    run_dir, tick = Path(run_dir), progress or (lambda _s, _d, _t: None)
    out = Path(out) if out is not None else run_dir
    if not runfolder.is_imported(run_dir) or not (run_dir / runfolder.SOURCE).is_file():
        raise SpikeportError(f"{run_dir}: not a run folder written by `spikeport import GRAPH.nir` "
                             "(import.json and source.nir are needed)")
    if target not in TARGETS:
        raise SpikeportError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if schedule not in SCHEDULES or keep not in KEEPS:
        raise SpikeportError(f"--lr-schedule must be one of {', '.join(SCHEDULES)} and --keep one of "
                             f"{', '.join(KEEPS)}, got {schedule!r} / {keep!r}")
    if not (isinstance(epochs, int) and 1 <= epochs <= 10_000) or not 0.0 <= holdout < 1.0 or not 0 < lr < 1:
        raise SpikeportError("--finetune EPOCHS must be 1..10000, --holdout in [0, 1), --lr in (0, 1)")
    fg, prod, dt, info = load_source(run_dir)
    if info.get("target") == "netx":
        raise SpikeportError(f"{run_dir}: imported with --netx; fine-tuning trains the Loihi integers of an import "
                             "without it (import again without --netx to fine-tune)")
    net0 = load_nir(run_dir / runfolder.MODEL_NIR)
    (x_tr, y_tr), (x_te, y_te), samples = _split(run_dir, net0, holdout, seed, info)
    if target == "auto":
        target = "labels" if y_tr is not None else "producer"
    if target == "labels" and y_tr is None:
        raise SpikeportError(f"{run_dir}: --target labels needs labels (import with --labels)")
    unit, graded = float(meta_value(net0, "input_unit", 1.0)), bool(net0.graded_input)
    to_int = lambda x: np.rint(x / unit).astype(np.int64).reshape(x.shape[0], x.shape[1], -1)  # noqa: E731
    low = lower.lower(fg, prod, dt, allow_approx=True)  # the import succeeded: its approximations are recorded
    names = [p.name for p in low.layers]
    rows = info.get("layers") if isinstance(info.get("layers"), list) else []
    archs = [finetune_net.arch_of(p, unit if i == 0 else 1.0, (GRADED_MAX if graded else 1) if i == 0 else 1,
                                  rows[i] if i < len(rows) and isinstance(rows[i], dict) else None)
             for i, p in enumerate(low.layers)]
    tick("producer's float reference (samples)", 0, x_tr.shape[1] + x_te.shape[1])
    t_spk, t_pred_tr = reference(fg, prod, dt, x_tr, names)
    _, t_pred_te = reference(fg, prod, dt, x_te, names)
    tick("producer's float reference (samples)", x_tr.shape[1] + x_te.shape[1], x_tr.shape[1] + x_te.shape[1])
    xi_tr, xi_te = to_int(x_tr), to_int(x_te)
    before = _figures(predict_net(net0, xi_te, emulator.run(net0, xi_te).spikes), t_pred_te, y_te)
    meta = {"source_producer": prod.name, "source_graph": runio.SOURCE, "source_layers": names,
            "readout": str(meta_value(net0, "readout", "spike_count"))}

    def net_of(m):
        graph = build_graph(low.layers, finetune_net.layer_quants(m), input_shape=fg.input_shape,
                            spec=InputSpec(unit, graded), time_steps=net0.time_steps, dt=dt, meta=meta)
        return graph, to_loihi_net(graph, out / runfolder.MODEL_NIR)

    def readout(m, xi, spikes):  # the run's readout on the module's integers
        return predict_net(net_of(m)[1] if needs_current(net0.meta) else net0, xi, spikes)
    model, start = _start(run_dir, archs, fg.input_shape, low.layers)
    xf_tr = torch.from_numpy((xi_tr * unit).astype(np.float32))
    t0 = time.time()
    history = train_module(model, xf_tr, xi_tr, target, y_tr, ([torch.from_numpy(s.astype(np.float32)) for s in t_spk],
                           t_pred_tr), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                           schedule=schedule, keep=keep, tick=lambda d, t: tick("fine-tuning (batches)", d, t),
                           readout=readout)
    seconds = time.time() - t0
    quants = finetune_net.layer_quants(model)
    graph, net = net_of(model)
    pred, spikes = _predictions(model, xi_te, readout)
    emu = emulator.run(net, xi_te).spikes
    mismatches = int(sum((a != b).sum() for a, b in zip(spikes, emu)))
    if mismatches:  # the module and the graph it wrote disagree: a bug, never written
        raise RuntimeError(f"fine-tuned module vs emulator on model.nir: {mismatches} spike mismatches")
    kept_split = holdout > 0 or (run_dir / runfolder.TRAIN_INPUTS).is_file()
    result = {"epochs": epochs, "target": target, "started_from": start, "lr": lr, "lr_schedule": schedule,
              "keep": keep, "batch_size": batch_size,
              "bias_lines": [p.name for p in low.layers if p.current is not None],
              "seed": seed, "holdout": holdout, "train_samples": int(x_tr.shape[1]),
              "heldout_samples": int(x_te.shape[1]), "measured_on": "held-out samples (the run's inputs.npy)"
              if kept_split else "the training samples (--holdout 0)", "samples": samples,
              "train_seconds": round(seconds, 2),
              "before": before, "after": _figures(pred, t_pred_te, y_te),
              "integer_forward_vs_emulator_mismatches": mismatches, "history": history, "layers": _integers(quants)}
    _write(run_dir, out, graph, model, info, result, (x_tr, y_tr), (x_te, y_te))
    return result


def _integers(quants: list) -> list[dict]:
    """The fine-tuned layers' Loihi constants (du, dv, vth, weight exponents, the bias line's exponent),
    for import.json."""
    out = []
    for i, ql in enumerate(quants):
        lq = ql.lq
        row = {"layer": f"lif{i}", "du": int(lq.lif.du), "dv": int(lq.lif.dv), "vth": int(lq.lif.vth),
               "weight_exp": int(lq.weight_exp)}
        if ql.rec is not None:
            row["recurrent_weight_exp"] = int(ql.rec.weight_exp)
        if ql.line is not None:
            row["bias_line_weight_exp"] = int(ql.line.weight_exp)
        out.append(row)
    return out


def _write(run_dir: Path, out: Path, graph, model, info: dict, result: dict, train, test) -> None:
    """The fine-tuned run folder: model.nir, checkpoint, split samples, source.nir, updated import.json."""
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_with(out / runfolder.MODEL_NIR, lambda tmp: nir.write(str(tmp), graph))
    finetune_net.save(out, model, {k: result[k] for k in ("epochs", "target", "lr", "lr_schedule", "keep",
                                                          "batch_size", "seed")})
    if run_dir.resolve() != out.resolve():
        for name in (runfolder.SOURCE, runfolder.CALIBRATION_INPUTS, runfolder.CALIBRATION_LABELS):
            if (run_dir / name).is_file():
                fileio.write_with(out / name, lambda tmp, _n=name: shutil.copyfile(run_dir / _n, tmp))
    fileio.write_npy(out / runfolder.TRAIN_INPUTS, np.ascontiguousarray(np.swapaxes(train[0], 0, 1)))
    if train[1] is not None:
        fileio.write_npy(out / runfolder.TRAIN_LABELS, np.asarray(train[1]))
    runio.save_inputs(out, *test)
    fileio.write_json(out / runfolder.IMPORT, {**info, "finetune": result})
