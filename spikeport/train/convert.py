"""``spikeport convert-checkpoint``: a PyTorch ``.pt`` / ``.pth`` state dict -> a spikeport run folder
(``model.safetensors`` + ``config.json``), the one place spikeport opens a pickle file.

It is read with ``torch.load(..., weights_only=True)``: PyTorch's restricted unpickler, which builds
only tensors, numbers, strings and plain containers and refuses every other global, so a pickle that
would run code fails instead. The tensors are then checked against the architecture ``config.json``
describes (names, shapes, floating dtypes, finiteness), written with ``checkpoint.save`` and read back
with ``checkpoint.load`` before the command reports success.

``config.json`` is either a spikeport checkpoint's own (``format``, ``config``, ``n_inputs``,
``n_classes``, ``input_shape``) or a plain object of training fields (``spikeport train``'s options:
``data``, ``hidden``, ``time_steps``, ...), optionally with ``n_inputs`` / ``n_classes`` /
``input_shape``; what is missing is taken from the dataset named by ``data``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from spikeport.errors import SpikeportError
from spikeport.files import fileio

MAX_BYTES = 4 << 30
STATE_KEYS = ("state_dict", "model_state_dict", "model")  # containers other tools wrap a state dict in
SHAPE_KEYS = ("n_inputs", "n_classes", "input_shape")


def convert_checkpoint(src: str | Path, *, config: str | Path, out: str | Path) -> Path:
    """Convert the state dict in ``src`` for the network ``config`` describes into run folder ``out``."""
    from spikeport.train import checkpoint
    from spikeport.train.config import TrainConfig

    src, out = Path(src), Path(out)
    if not src.is_file():
        raise SpikeportError(f"{src}: file not found")
    if src.stat().st_size > MAX_BYTES:
        raise SpikeportError(f"{src}: larger than {MAX_BYTES >> 30} GiB")
    raw = fileio.read_json(config)
    fields = raw["config"] if raw.get("format") == checkpoint.FORMAT else {k: v for k, v in raw.items()
                                                                          if k not in SHAPE_KEYS}
    if not isinstance(fields, dict):
        raise SpikeportError(f"{config}: field 'config' must be an object")
    cfg = checkpoint.saved_config(fields, str(config)) if raw.get("format") == checkpoint.FORMAT else \
        TrainConfig.from_dict(fields, source=str(config))
    n_in, n_classes, shape = _sizes(raw, cfg, Path(config))
    state = _read_state_dict(src)
    model = checkpoint.build_model(cfg, n_in, n_classes, shape)
    model.load_state_dict(_match(state, model.state_dict(), src, Path(config)))
    checkpoint.save(out, model, cfg, n_in, n_classes, shape)
    checkpoint.load(out)  # what was written reads back and validates
    return out


def _sizes(raw: dict, cfg, config: Path) -> tuple[int, int, tuple[int, ...]]:
    """(n_inputs, n_classes, input_shape) from config.json, else from the dataset ``cfg.data``."""
    if all(k in raw for k in SHAPE_KEYS[:2]):
        n_in, n_classes, shape = raw["n_inputs"], raw["n_classes"], raw.get("input_shape") or [raw["n_inputs"]]
    else:
        from spikeport.data import load_dataset

        ds = load_dataset(cfg.data, cfg.data_dir, seed=cfg.seed, n_bins=cfg.time_steps, limit=1)
        shape = list(ds.input_shape)
        n_in, n_classes = 1, ds.n_classes
        for s in shape:
            n_in *= int(s)
    ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10**7 for v in (n_in, n_classes))
    ok = ok and isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    if not ok or int(_prod(shape)) != n_in:
        raise SpikeportError(f"{config}: 'n_inputs', 'n_classes' and 'input_shape' must be positive integers "
                             f"(input_shape's product = n_inputs)")
    return n_in, n_classes, tuple(shape)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _read_state_dict(src: Path) -> dict:
    """The ``{name: tensor}`` mapping in ``src``, unpickled with tensors-only rules."""
    import pickle
    import re
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            obj = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the restricted unpickler refused an object: never run it
        found = re.search(r"Unsupported (?:global|operand)[^.\n]*", str(err))
        what = f" ({found.group(0)[:120]})" if found else ""
        raise SpikeportError(f"{src}: holds Python objects other than tensors{what}; refused (it could run "
                             "code). Save a plain state dict: torch.save(model.state_dict(), path)") from None
    except Exception as err:  # RuntimeError (corrupt zip), EOFError, ValueError, ...
        why = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise SpikeportError(f"{src}: not a readable PyTorch state dict ({type(err).__name__}: {why})") from None
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise SpikeportError(f"{src}: holds a {type(obj).__name__}, not a state dict {{name: tensor}}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise SpikeportError(f"{src}: entry {str(bad[0])[:60]!r} is not a named tensor")
    prefix = "module."  # DistributedDataParallel's wrapper
    if all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def _match(state: dict, expected: dict, src: Path, config: Path) -> dict[str, Any]:
    """``state`` checked against the model's own state dict: same names and shapes, finite floats
    (cast to the model's dtype), integer buffers of integer dtype."""
    import torch

    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise SpikeportError(f"{src}: tensors do not match the network in {config} (missing: {missing[:3]}, "
                             f"unexpected: {extra[:3]})")
    out = {}
    for name, ref in expected.items():
        t = state[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise SpikeportError(f"{src}: tensor '{name}' has shape {tuple(t.shape)}, "
                                 f"{config} implies {tuple(ref.shape)}")
        if ref.is_floating_point():
            if not t.is_floating_point():
                raise SpikeportError(f"{src}: tensor '{name}' is {t.dtype}, a floating-point tensor is needed")
            if not torch.isfinite(t).all():
                raise SpikeportError(f"{src}: tensor '{name}' contains NaN or infinite values")
        elif t.is_floating_point() or t.is_complex():
            raise SpikeportError(f"{src}: tensor '{name}' is {t.dtype}, the model keeps {ref.dtype}")
        out[name] = t.detach().to(ref.dtype).contiguous().clone()
    return out
