"""Training and evaluation of sigma-delta networks (``TrainConfig.neuron = "sigma-delta"``,
:mod:`spikeport.train.sigma_delta`): BPTT over the frames with quantization-aware forwards, Adam with a cosine
schedule, per-epoch resumable state (:mod:`spikeport.train.resume`), and metrics on the float, QAT and
Loihi-integer forwards with the messages every population sends.

Loss: the output's cross-entropy averaged over the T steps (every step is trained to classify what it has
seen so far; the deployed readout takes the last step) plus ``sd_message_penalty`` times the hidden layers'
change size (:class:`~spikeport.train.sigma_delta.SDLayer`).

Evaluation inputs are the test split encoded in one call with the seed deploy and parity use
(``INPUT_SEED``), so a ``moving`` sample gets the same trajectory here as on Lava.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from spikeport.data import encode, float_view
from spikeport.data.augment import augment
from spikeport.files import fileio, runfolder
from spikeport.train import checkpoint
from spikeport.train import resume as resume_mod
from spikeport.train.config import TrainConfig
from spikeport.train.sigma_delta import SigmaDeltaNet

INPUT_SEED = 12345  # = spikeport.pipeline.inputs.INPUT_SEED (train must not import pipeline)
EVAL_BATCH = 250

Progress = Callable[[str, int, int], None]


def _float(enc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(float_view(enc, "direct"))


def loss_fn(out, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy of the logits at every step (mean over steps) + the message penalty."""
    T = out.logits.shape[0]
    ce = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), labels.repeat(T))
    return ce + cfg.sd_message_penalty * out.penalty if cfg.sd_message_penalty else ce


def evaluate(model: SigmaDeltaNet, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, *, integer: bool,
             qat: bool = False) -> dict:
    """Accuracy (class = argmax of the output at the last step) of the float (``qat``: quantized) or
    Loihi-integer forward on (x, y), and the nonzero messages per sample of every population (input first)."""
    enc = encode(np.asarray(x), cfg.time_steps, cfg.encoder, seed=INPUT_SEED)
    model.eval()
    correct, sent, peak = 0, None, None
    with torch.no_grad():
        for i in range(0, len(y), EVAL_BATCH):
            chunk = enc[:, i:i + EVAL_BATCH]
            if integer:
                outs = model.forward_int(torch.from_numpy(chunk.astype(np.int64)))
                pred = outs[-1][-1].argmax(dim=1).numpy()
                counts = [int(torch.count_nonzero(o)) for o in outs]
                top = [int(o.abs().max()) for o in outs]
                peak = top if peak is None else [max(a, b) for a, b in zip(peak, top)]
            else:
                out = model(_float(chunk), qat=qat)
                pred = out.logits[-1].argmax(dim=1).numpy()
                counts = out.sent
            correct += int((pred == y[i:i + EVAL_BATCH]).sum())
            sent = counts if sent is None else [a + b for a, b in zip(sent, counts)]
    n = max(len(y), 1)
    return {"accuracy": correct / n, "samples": len(y), "messages": [s / n for s in sent or []],
            "payload_bits": None if peak is None else [int(p).bit_length() + 1 for p in peak]}


def _step(model, opt, xb: np.ndarray, yb: np.ndarray, cfg: TrainConfig, seed: int) -> float:
    enc = encode(xb, cfg.time_steps, cfg.encoder, seed=seed)
    out = model(_float(enc), qat=cfg.qat)
    loss = loss_fn(out, torch.from_numpy(np.array(yb, np.int64)), cfg)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.item())


def train_sd(cfg: TrainConfig, out: str | Path, progress: Progress | None = None, *, resume: bool = False) -> dict:
    """Train a sigma-delta network; write model.safetensors + config.json + metrics.json into ``out``;
    return the metrics (CPU; see ``train.loop.train`` for the run folder and ``resume``)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ds = checkpoint.dataset_for(cfg)
    shape = tuple(ds.input_shape)
    n_in = int(np.prod(shape))
    model = checkpoint.build_model(cfg, n_in, ds.n_classes, shape)
    model.penalty, model.dropout = cfg.sd_message_penalty > 0, cfg.sd_dropout
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    n = len(ds.x_train)
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    state = resume_mod.load_state(out, cfg, model, opt, sched, rng) if resume else None
    start, history = (state.epoch, state.history) if state else (0, [])
    t0, cpu0, first = time.time(), time.process_time(), None
    for epoch in range(start, cfg.epochs):
        model.train()
        order, losses = rng.permutation(n), []
        for b in range(steps):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb = ds.x_train[idx]
            if cfg.augment_flip or cfg.augment_shift:
                xb = augment(xb, flip=cfg.augment_flip, shift=cfg.augment_shift,
                             rng=np.random.default_rng([cfg.seed, epoch, b, 0xA06]))
            losses.append(_step(model, opt, xb, ds.y_train[idx], cfg, cfg.seed * 7919 + epoch * steps + b))
            first = first if first is not None else round(time.time() - t0, 3)
            if progress:
                progress("train", epoch * steps + b + 1, cfg.epochs * steps)
        sched.step()
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        resume_mod.save_state(out, epoch + 1, cfg, model, opt, sched, rng, history)
    train_time, cpu = time.time() - t0, time.process_time() - cpu0
    metrics = _metrics(model, ds, cfg)
    metrics.update({"train_samples": n, "train_seconds": round(train_time, 2), "history": history,
                    "train_cpu_seconds": round(cpu, 1), "machine_load": _load(),
                    "train_samples_per_s": round(n * (cfg.epochs - start) / max(train_time, 1e-9), 1),
                    "device": "cpu", "processes": 1, "resumed_from_epoch": start, "train_path": "eager",
                    "first_step_seconds": first})
    out = Path(out)
    checkpoint.save(out, model, cfg, n_in, ds.n_classes, shape)
    fileio.write_json(out / runfolder.METRICS, metrics)
    return metrics


def _load() -> float | None:
    """The 1-minute load average at the end of training (others' jobs share the CPUs), where the OS says."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _metrics(model: SigmaDeltaNet, ds, cfg: TrainConfig) -> dict:
    """Accuracies of the three forwards on the test split (the validation split with ``cfg.validation``) and
    the integers' message counts and units."""
    x, y = ds.x_test, ds.y_test
    flt = evaluate(model, x, y, cfg, integer=False)
    qat = evaluate(model, x, y, cfg, integer=False, qat=True)
    ints = evaluate(model, x, y, cfg, integer=True)
    sizes = [int(np.prod(model.input_shape))] + [layer.geom.n_out for layer in model.layers]
    lqs = model.quant()
    return {"float_accuracy": flt["accuracy"], "qat_accuracy": qat["accuracy"], "quantized_accuracy": ints["accuracy"],
            "test_samples": ints["samples"], "scored_on": "validation split" if cfg.validation else "test split",
            "messages_per_sample": [round(m, 2) for m in ints["messages"]],
            "payload_bits": ints["payload_bits"],  # signed bits of the largest |payload| per population
            "message_rate": round(sum(ints["messages"]) / (cfg.time_steps * sum(sizes)), 6),
            "weight_bits": [int(np.ceil(np.log2(np.abs(lq.weight.astype(np.int64)).max(initial=0) + 1))) + 1
                            for lq in lqs],
            "thresholds_vth": [model.input_vth] + [int(lq.vth) for lq in lqs]}
