"""Checkpoints: ``model.safetensors`` (tensors only) + ``config.json``. No pickle anywhere.

Loading validates the JSON fields, every tensor's name, dtype, shape and finiteness against the
architecture the config describes; any problem is a one-line SpikeportError naming file and field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeport.data import INPUT_LEVELS, input_unit, is_graded, load_dataset
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.train import methods
from spikeport.train.config import CONFIG_VERSION, TrainConfig
from spikeport.train.model import LayerSpec, SpikingMLP

WEIGHTS, CONFIG = runfolder.WEIGHTS, runfolder.CONFIG
FORMAT = "spikeport-checkpoint"
# Fields every checkpoint's config has had since version 1 (later, method-specific fields default to
# the behaviour before they existed, so older checkpoints still load).
REQUIRED_FIELDS = ("data", "method", "arch", "hidden", "time_steps", "encoder", "beta_syn", "beta_mem", "theta",
                   "bias", "surrogate_slope", "qat", "seed")
# Fields whose default changed after they were added: a config.json without them was trained with this value.
SAVED_BEFORE = {"target": "lava"}


def saved_config(obj: dict, source: str) -> TrainConfig:
    """The TrainConfig of a checkpoint's ``config`` object (``SAVED_BEFORE`` fills fields it predates)."""
    return TrainConfig.from_dict({**SAVED_BEFORE, **obj} if isinstance(obj, dict) else obj, source=source)


def layer_specs(cfg: TrainConfig, n_in: int, n_classes: int) -> list[LayerSpec]:
    sizes = [n_in] + list(cfg.hidden) + [n_classes]
    return [LayerSpec(a, b, beta_syn=cfg.beta_syn, beta_mem=cfg.beta_mem, theta=cfg.theta, bias=cfg.bias)
            for a, b in zip(sizes[:-1], sizes[1:])]


def build_model(cfg: TrainConfig, n_in: int, n_classes: int, input_shape: tuple[int, ...] | None = None) -> SpikingMLP:
    """The network ``cfg`` describes, with the layer class of its training method (a sigma-delta network for
    ``neuron = "sigma-delta"``, :mod:`spikeport.train.sigma_delta`). ``input_shape`` (C, H, W) of one sample
    is needed by ``arch="conv"``."""
    if cfg.neuron == "sigma-delta":
        from spikeport.train import sigma_delta

        shape = tuple(input_shape or (n_in,))
        if int(np.prod(shape)) != n_in:
            raise SpikeportError(f"input shape {shape} does not hold {n_in} values")
        return sigma_delta.build(cfg, shape, n_classes, INPUT_LEVELS)
    method = methods.get(cfg.method)
    n_classes = n_classes * cfg.population  # output neurons: ``population`` per class
    if cfg.target == "xylo-audio2":
        from spikeport.train.xylo_model import XyloRNN

        return XyloRNN(cfg, n_in, n_classes)
    if cfg.arch != "fc":
        from spikeport.train import layers

        kw = dict(input_unit=input_unit(cfg.encoder), layer_cls=method.layer_cls, layer_kwargs=method.layer_kwargs(cfg))
        if cfg.arch == "rfc":
            model = layers.build_rfc(cfg, n_in, n_classes, **kw)
        else:
            shape = tuple(input_shape or ())
            if len(shape) != 3 or int(np.prod(shape)) != n_in:
                raise SpikeportError(f"arch 'conv' needs a (C, H, W) input shape of {n_in} values, got {shape or None}")
            model = layers.build_conv(cfg, shape, n_classes, **kw)
    else:
        model = SpikingMLP(layer_specs(cfg, n_in, n_classes), graded_input=is_graded(cfg.encoder),
                           input_levels=round(1.0 / input_unit(cfg.encoder)), surrogate_slope=cfg.surrogate_slope,
                           layer_cls=method.layer_cls, layer_kwargs=method.layer_kwargs(cfg))
    for layer in model.layers:
        layer.netx = cfg.target == "netx"
    method.prepare(model, cfg)
    if cfg.readout == "membrane":  # the output layer reads out by its voltage: a non-spiking integrator
        model.layers[-1].make_integrator(cfg.time_steps)
    return model


def save(run_dir: str | Path, model: SpikingMLP, cfg: TrainConfig, n_in: int, n_classes: int,
         input_shape: tuple[int, ...]) -> None:
    """Write config.json, then model.safetensors, each atomically, into run_dir. config.json records
    the weights' SHA-256, so a folder whose two files come from different runs (an interrupted
    re-training into the same folder) is refused by :func:`load` instead of mixing them."""
    import hashlib

    from safetensors.torch import save

    run_dir = Path(run_dir)
    data = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    fileio.write_json(run_dir / CONFIG, {
        "format": FORMAT, "version": CONFIG_VERSION, "config": cfg.to_dict(),
        "n_inputs": n_in, "n_classes": n_classes, "input_shape": list(input_shape),
        "weights_sha256": hashlib.sha256(data).hexdigest(),
    })
    fileio.write_bytes(run_dir / WEIGHTS, data)


def load(run_dir: str | Path) -> tuple[SpikingMLP, TrainConfig, dict]:
    """Load and validate a checkpoint folder; returns (model in eval mode, config, raw config.json)."""
    import hashlib

    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    run_dir = Path(run_dir)
    fileio.refuse_pickle(run_dir)
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
    if raw.get("version") != CONFIG_VERSION or isinstance(raw.get("version"), bool):
        raise SpikeportError(f"{src}: field 'version' must be {CONFIG_VERSION}, got {str(raw.get('version'))[:40]}")
    missing = [k for k in REQUIRED_FIELDS if k not in raw["config"]]
    if missing:  # a default would silently change the network
        raise SpikeportError(f"{src}: field 'config' lacks {', '.join(missing)}")
    cfg = saved_config(raw["config"], src)
    for key in ("n_inputs", "n_classes"):
        if not isinstance(raw.get(key), int) or isinstance(raw[key], bool) or not 0 < raw[key] <= 10**7:
            raise SpikeportError(f"{src}: field {key!r} must be a positive integer")
    shape = _input_shape(raw, src)
    try:
        data = (run_dir / WEIGHTS).read_bytes()
        tensors = load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise SpikeportError(f"{run_dir / WEIGHTS}: not a valid safetensors file ({str(err)[:160]})") from None
    _check_size(cfg, raw, sum(t.numel() for t in tensors.values()), src)
    model = build_model(cfg, raw["n_inputs"], raw["n_classes"], shape)
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
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SpikeportError(f"{run_dir / WEIGHTS}: tensor '{name}' contains NaN or infinite values")
    digest = raw.get("weights_sha256")
    if digest is not None and digest != hashlib.sha256(data).hexdigest():
        raise SpikeportError(f"{run_dir / WEIGHTS}: does not match config.json's 'weights_sha256' (the two files "
                             "come from different runs, e.g. an interrupted training into this folder); train again")
    model.load_state_dict(tensors)
    model.eval()
    return model, cfg, raw


def _input_shape(raw: dict, src: str) -> tuple[int, ...]:
    """config.json's 'input_shape': 1 to 4 positive integers whose product is 'n_inputs' (or absent)."""
    shape = raw.get("input_shape")
    if shape is None:
        return ()
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
            and int(np.prod(shape, dtype=object)) == raw["n_inputs"]):
        raise SpikeportError(f"{src}: field 'input_shape' must be 1 to 4 positive integers whose product is "
                             f"n_inputs={raw['n_inputs']}, got {str(shape)[:60]}")
    return tuple(shape)


def _check_size(cfg: TrainConfig, raw: dict, stored: int, src: str) -> None:
    """Refuse, before allocating anything, a config whose fully connected layers alone need more
    parameters than the weights file holds (a corrupt size would otherwise allocate it)."""
    if cfg.arch not in ("fc", "rfc"):
        return
    sizes = [raw["n_inputs"], *cfg.hidden, raw["n_classes"] * cfg.population]
    needed = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if needed > stored:
        raise SpikeportError(f"{src}: the layers it describes ({'-'.join(map(str, sizes))}) need {needed} weights, "
                             f"but {WEIGHTS} holds {stored}")


def dataset_for(cfg: TrainConfig):
    """The dataset a run trains and scores on: with ``cfg.validation`` > 0, its training set split into the
    samples trained on and a held-out validation split scored as the test set (``data.split``)."""
    ds = load_dataset(cfg.data, cfg.data_dir, seed=cfg.seed, n_bins=cfg.time_steps, limit=cfg.limit)
    if cfg.validation > 0:
        from spikeport.data.split import validation_split

        ds = validation_split(ds, cfg.validation, cfg.seed)
    return ds
