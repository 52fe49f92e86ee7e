"""Surrogate-gradient BPTT training with quantization-aware forward, and evaluation."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spikeport.core.readout import predict
from spikeport.data import encode, float_view
from spikeport.data.augment import augment
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.train import checkpoint, compiling, distributed, methods
from spikeport.train import resume as resume_mod
from spikeport.train.config import TrainConfig
from spikeport.train.model import SpikingMLP

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _encode_batch(x: np.ndarray, cfg: TrainConfig, seed: int) -> np.ndarray:
    """Integer input [T, B, ...] (what Loihi receives)."""
    return encode(x, cfg.time_steps, cfg.encoder, seed=seed)


def float_input(enc: np.ndarray, encoder: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """The float tensor [T, B, ...] training sees for an encoded batch. Direct-encoded frames are the same
    at every step: they come as one frame expanded over time (a stride-0 view, no copy), which the
    layers project once (``LIFDense.input_current``)."""
    if encoder == "direct" and enc.shape[0] > 1:
        one = torch.from_numpy(float_view(enc[:1], encoder)).to(device)
        return one.expand(enc.shape[0], *one.shape[1:])
    return torch.from_numpy(float_view(enc, encoder)).to(device)


def evaluate(model: SpikingMLP, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, *, integer: bool,
             qat: bool = False, batch_size: int = 256, seed: int = 10_000) -> dict:
    """Accuracy of the float forward (``qat``: with quantized parameters) or of the Loihi-integer
    forward on (x, y), read out as the deployed graph is (``measure.readout.predict`` with the
    method's readout metadata), and the firing rate of every layer (mean spikes per neuron per step)."""
    method = methods.get(cfg.method)
    correct, total, spikes, sizes, meta = 0, 0, [], [], None
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            enc = _encode_batch(x[i:i + batch_size], cfg, seed + i)
            if integer:
                outs = model.forward_int(torch.from_numpy(enc.astype(np.int64)))
            else:
                outs = model(float_input(enc, cfg.encoder), qat=qat)
            meta = meta or method.readout_meta(cfg, outs[-1].shape[2])
            membrane = cfg.readout == "membrane"  # the output integrator's voltage, never spikes
            pred = predict(outs[-1].numpy() > 0, meta, outs[-1].numpy() if membrane else None)
            correct += int((pred == y[i:i + batch_size]).sum())
            total += len(enc[0])
            counts = [float(o.float().sum()) for o in (outs[:-1] if membrane else outs)] + ([0.0] if membrane else [])
            spikes = [a + b for a, b in zip(spikes, counts)] if spikes else counts
            sizes = [o.shape[0] * o.shape[2] for o in outs]  # neuron-steps per sample
    rates = [s / (n * max(total, 1)) for s, n in zip(spikes, sizes)]
    return {"accuracy": correct / max(total, 1), "samples": total, "firing_rates": rates}


def train(cfg: TrainConfig, out: str | Path, progress: Progress | None = None, *,
          device: str = "cpu", use_distributed: bool = False, resume: bool = False) -> dict:
    """Train, write model.safetensors + config.json + metrics.json into ``out``; return the metrics.

    The full training state is saved to ``out/checkpoint/`` after every epoch (``train.resume``);
    ``resume``: continue from it (same configuration required) to the same weights an uninterrupted
    run reaches, or start from scratch when ``out`` holds none.

    ``device``: "cpu" or "cuda[:k]" for the float/QAT training passes (evaluation of the Loihi-integer
    forward runs on the CPU). ``use_distributed``: join the torchrun process group and train with
    DistributedDataParallel (same global batch as one process); only rank 0 writes files.
    """
    cfg.validate()
    if cfg.neuron == "sigma-delta":  # its own loop (train.sd_loop); CPU, one process
        if device != "cpu" or use_distributed:
            raise SpikeportError("neuron sigma-delta trains on the CPU in one process (no --device / --distributed)")
        from spikeport.train.sd_loop import train_sd

        return train_sd(cfg, out, progress, resume=resume)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpikeportError(f"--device {device}: no CUDA device is available")
    world = distributed.init(device) if use_distributed else distributed.World(device=device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ds = checkpoint.dataset_for(cfg)  # with cfg.validation, x_test / y_test are the held-out validation split
    x_train, y_train = ds.x_train, ds.y_train
    n_in = int(np.prod(ds.input_shape))
    model = checkpoint.build_model(cfg, n_in, ds.n_classes, tuple(ds.input_shape)).to(world.device)
    warn_vanishing_netx_weights(model, cfg)
    net = distributed.wrap(model, world)
    method = methods.get(cfg.method)
    opt = torch.optim.Adam(method.param_groups(model, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    n = len(x_train)
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    history, t0, first_step = [], time.time(), None
    cpu0, load0, clock = time.process_time(), _load_average(), []
    state = resume_mod.load_state(out, cfg, model, opt, sched, rng) if resume else None
    start = state.epoch if state else 0
    path = compiling.choose(cfg.compile, steps=steps * (cfg.epochs - start), device=world.device,
                            elements=compiling.fused_elements(model, cfg.time_steps, min(cfg.batch_size, n)),
                            sig=compiling.signature(cfg))
    compiling.apply(model, path.compiled)
    history = state.history if state else history
    for epoch in range(start, cfg.epochs):
        model.train()
        order = rng.permutation(n)
        losses = []
        for b in range(steps):
            idx = distributed.local_slice(order[b * cfg.batch_size:(b + 1) * cfg.batch_size], world)
            xb = x_train[idx]
            if cfg.augment_flip or cfg.augment_shift:  # its own generator per batch: resumable, like the encoding
                xb = augment(xb, flip=cfg.augment_flip, shift=cfg.augment_shift,
                             rng=np.random.default_rng([cfg.seed, epoch, b, 0xA06]))
            enc = _encode_batch(xb, cfg, seed=cfg.seed * 7919 + epoch * steps + b)
            xf = float_input(enc, cfg.encoder, world.device)
            outs = net(xf, qat=cfg.qat)
            labels = torch.from_numpy(np.asarray(y_train[idx], dtype=np.int64)).to(world.device)
            loss = method.loss(outs, labels, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            first_step = first_step if first_step is not None else time.time() - t0
            if progress:
                progress("train", epoch * steps + b + 1, cfg.epochs * steps)
        sched.step()
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        clock.append({"epoch": epoch + 1, "wall_s": round(time.time() - t0, 1),
                      "cpu_s": round(time.process_time() - cpu0, 1)})  # cumulative, this process
        if world.is_main:
            resume_mod.save_state(out, epoch + 1, cfg, model, opt, sched, rng, history)
    train_time, train_cpu = time.time() - t0, time.process_time() - cpu0
    if path.compiled and not compiling.fell_back() and first_step is not None:
        compiling.mark_warm(compiling.signature(cfg))
    model.cpu().eval()
    if not world.is_main:
        distributed.finish(world)
        return {}
    float_acc = evaluate(model, ds.x_test, ds.y_test, cfg, integer=False)
    qat_acc = evaluate(model, ds.x_test, ds.y_test, cfg, integer=False, qat=True)
    int_acc = evaluate(model, ds.x_test, ds.y_test, cfg, integer=True)
    metrics = {
        "float_accuracy": float_acc["accuracy"], "qat_accuracy": qat_acc["accuracy"],
        "quantized_accuracy": int_acc["accuracy"],
        "test_samples": float_acc["samples"], "train_samples": n, "train_seconds": round(train_time, 2),
        "train_cpu_seconds": round(train_cpu, 1), "threads": torch.get_num_threads(),
        "load_average": [load0, _load_average()],  # 1-minute load of the machine, at the start and the end
        "epoch_clock": clock,  # per epoch trained by this process: cumulative wall and CPU seconds
        "train_samples_per_s": round(n * cfg.epochs / max(train_time, 1e-9), 1), "history": history,
        "firing_rates": [round(r, 6) for r in int_acc["firing_rates"]],  # per layer, integer forward, test set
        "fire_intensity": round(_fire_intensity(model, int_acc["firing_rates"]), 6),
        **method.metrics(model),
    }
    if cfg.validation:  # metrics.json scored the held-out split: hyper-parameters are chosen on it, never on test
        metrics["validation"] = {"samples": int(len(ds.y_test)), "of_train_samples": int(n + len(ds.y_test)),
                                 "qat_accuracy": qat_acc["accuracy"], "quantized_accuracy": int_acc["accuracy"]}
    metrics["scored_on"] = "validation split" if cfg.validation else "test split"
    metrics.update({"device": world.device, "processes": world.size, "resumed_from_epoch": start,
                    "train_path": _path_name(path), "train_path_reason": path.reason,
                    "chip": "xylo-audio2" if cfg.target == "xylo-audio2" else "loihi",
                    "first_step_seconds": None if first_step is None else round(first_step, 3)})
    out = Path(out)
    checkpoint.save(out, model, cfg, n_in, ds.n_classes, tuple(ds.input_shape))
    fileio.write_json(out / runfolder.METRICS, metrics)
    distributed.finish(world)
    return metrics


def warn_vanishing_netx_weights(model: SpikingMLP, cfg: TrainConfig, min_nonzero: float = 0.05) -> list[float]:
    """Fraction of nonzero integer weights of each layer with graded input (``max_input_int`` > 1) as the
    netx quantizer writes them; warn (one line) where it is below ``min_nonzero``. netx writes no weight
    exponent, so a layer whose inputs reach 255 (direct-encoded pixels) needs weights near 1 / 255 of the
    threshold. bpsrm and hnsg on fc 784-512 start with every first-layer weight at 0 (lif, klif: about half
    nonzero), and QAT then trains on a few levels a sign (measured: bpsrm fc with a membrane readout diverged,
    842 of 401,408 first-layer weights nonzero after 15 epochs; with target lava it trained to 89.7 %)."""
    if cfg.target != "netx" or cfg.neuron != "lif":
        return []
    fractions = []
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            if layer.max_input_int() <= 1:
                continue
            w, b = layer.float_params(None)
            frac = float(np.count_nonzero(layer.quantize(w, b).weight)) / max(1, w.numel())
            fractions.append(frac)
            if frac < min_nonzero:
                warnings.warn(
                    f"target 'netx': layer {i + 1} takes graded input up to {layer.max_input_int()} and netx "
                    f"writes no weight exponent, so {frac:.1%} of its initial weights are nonzero integers "
                    "and training may not converge; train with target = 'lava' (Lava and the emulator, no "
                    "netx file) or a spiking encoder", RuntimeWarning, stacklevel=2)
    return fractions


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none): how shared the CPUs were."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _path_name(path: compiling.Choice) -> str:
    """"compiled", "eager", or "eager (compile failed)" when the compiler broke during the run."""
    if path.compiled:
        return "eager (compile failed)" if compiling.fell_back() else "compiled"
    return "eager"


def _fire_intensity(model: SpikingMLP, rates: list[float]) -> float:
    """Mean spikes per neuron per step over all neurons of the network (layer rates weighted by size)."""
    sizes = [layer.spec.n_out for layer in model.layers]
    return float(np.dot(rates, sizes) / max(sum(sizes), 1)) if rates else 0.0
