"""Checkpoints: ``model.safetensors`` (tensors only) + ``config.json``. No pickle anywhere.

Loading validates the JSON fields, every tensor's name, dtype, shape and finiteness against the
architecture the config describes; any problem is a one-line SpikeportError naming file and field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeport import fileio
from spikeport.data import INPUT_LEVELS, is_graded, load_dataset
from spikeport.errors import SpikeportError
from spikeport.train import methods
from spikeport.train.config import CONFIG_VERSION, TrainConfig
from spikeport.train.model import LayerSpec, SpikingMLP

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "spikeport-checkpoint"


def layer_specs(cfg: TrainConfig, n_in: int, n_classes: int) -> list[LayerSpec]:
    sizes = [n_in] + list(cfg.hidden) + [n_classes]
    return [LayerSpec(a, b, beta_syn=cfg.beta_syn, beta_mem=cfg.beta_mem, theta=cfg.theta, bias=cfg.bias)
            for a, b in zip(sizes[:-1], sizes[1:])]


def build_model(cfg: TrainConfig, n_in: int, n_classes: int, input_shape: tuple[int, ...] | None = None) -> SpikingMLP:
    """The network ``cfg`` describes, with the layer class of its training method. ``input_shape``
    (C, H, W) of one sample is needed by ``arch="conv"``."""
    method = methods.get(cfg.method)
    if cfg.arch != "fc":
        from spikeport.train import layers

        unit = 1.0 / INPUT_LEVELS if is_graded(cfg.encoder) else 1.0
        kw = dict(input_unit=unit, layer_cls=method.layer_cls, layer_kwargs=method.layer_kwargs(cfg))
        if cfg.arch == "rfc":
            return layers.build_rfc(cfg, n_in, n_classes, **kw)
        shape = tuple(input_shape or ())
        if len(shape) != 3 or int(np.prod(shape)) != n_in:
            raise SpikeportError(f"arch 'conv' needs a (C, H, W) input shape of {n_in} values, got {shape or None}")
        return layers.build_conv(cfg, shape, n_classes, **kw)
    return SpikingMLP(layer_specs(cfg, n_in, n_classes), graded_input=is_graded(cfg.encoder),
                      input_levels=INPUT_LEVELS, surrogate_slope=cfg.surrogate_slope,
                      layer_cls=method.layer_cls, layer_kwargs=method.layer_kwargs(cfg))


def save(run_dir: str | Path, model: SpikingMLP, cfg: TrainConfig, n_in: int, n_classes: int,
         input_shape: tuple[int, ...]) -> None:
    """Write model.safetensors and config.json atomically into run_dir."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fileio.write_with(run_dir / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    fileio.write_json(run_dir / CONFIG, {
        "format": FORMAT, "version": CONFIG_VERSION, "config": cfg.to_dict(),
        "n_inputs": n_in, "n_classes": n_classes, "input_shape": list(input_shape),
    })


def load(run_dir: str | Path) -> tuple[SpikingMLP, TrainConfig, dict]:
    """Load and validate a checkpoint folder; returns (model in eval mode, config, raw config.json)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SpikeportError(f"{run_dir}: run folder not found")
    for name in (WEIGHTS, CONFIG):
        if not (run_dir / name).is_file():
            pickles = sorted(p.name for p in run_dir.glob("*.pt*"))
            hint = f" (found {pickles[0]}: pickle checkpoints are refused; see `spikeport convert-checkpoint`)" \
                if pickles else ""
            raise SpikeportError(f"{run_dir / name}: file not found{hint}")
    raw = fileio.read_json(run_dir / CONFIG)
    src = str(run_dir / CONFIG)
    if raw.get("format") != FORMAT:
        raise SpikeportError(f"{src}: field 'format' must be {FORMAT!r}")
    if not isinstance(raw.get("config"), dict):
        raise SpikeportError(f"{src}: field 'config' must be an object")
    cfg = TrainConfig.from_dict(raw["config"], source=src)
    for key in ("n_inputs", "n_classes"):
        if not isinstance(raw.get(key), int) or not 0 < raw[key] <= 10**7:
            raise SpikeportError(f"{src}: field {key!r} must be a positive integer")
    model = build_model(cfg, raw["n_inputs"], raw["n_classes"], tuple(raw.get("input_shape") or ()))
    try:
        tensors = load_file(str(run_dir / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise SpikeportError(f"{run_dir / WEIGHTS}: not a valid safetensors file ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise SpikeportError(f"{run_dir / WEIGHTS}: tensors do not match config.json "
                             f"(missing: {missing[:3]}, unexpected: {extra[:3]})")
    for name, ref in expected.items():
        t = tensors[name]
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise SpikeportError(f"{run_dir / WEIGHTS}: tensor '{name}' has shape {tuple(t.shape)} {t.dtype}, "
                                 f"config.json implies {tuple(ref.shape)} {ref.dtype}")
        if not torch.isfinite(t).all():
            raise SpikeportError(f"{run_dir / WEIGHTS}: tensor '{name}' contains NaN or infinite values")
    model.load_state_dict(tensors)
    model.eval()
    return model, cfg, raw


def dataset_for(cfg: TrainConfig):
    return load_dataset(cfg.data, cfg.data_dir, seed=cfg.seed, n_bins=cfg.time_steps, limit=cfg.limit)
