"""Per-epoch training state for ``spikeport train --resume``: one safetensors file, no pickle.

``RUN/checkpoint/state.safetensors`` holds the tensors

- ``model.NAME``: the model's state dict (parameters and buffers),
- ``optim.I.KEY``: the optimizer's per-parameter state (Adam's ``exp_avg``, ``exp_avg_sq``, ``step``),
- ``rng.torch`` (uint8, the CPU generator) and ``rng.cuda.K`` (one per CUDA device),

and, in the file's header metadata, one JSON document (key ``spikeport``): the format, the number of
completed ``epoch`` s, the training ``config``, the loss ``history``, the optimizer's ``param_groups``
and non-tensor per-parameter values, the LR scheduler's state and the numpy generator's state (the
order of the training data). It is one file written atomically after every epoch, so a killed run
leaves the state of its last finished epoch, never a mix of two. Resuming restores all of it, so the
run continues exactly as an uninterrupted one with the same seed (bit-identical weights).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

STATE = Path(runfolder.CHECKPOINT_DIR) / "state.safetensors"
FORMAT = "spikeport-train-state"
VERSION = 1


@dataclass
class Resumed:
    """Where a resumed run continues: ``epoch`` completed epochs and their loss ``history``."""

    epoch: int
    history: list


SPEED_ONLY = {"compile"}  # fields that change how fast a run trains, not what it computes: may differ on resume


def save_state(run_dir: str | Path, epoch: int, cfg, model: torch.nn.Module, opt: torch.optim.Optimizer,
               sched, rng: np.random.Generator, history: list) -> Path:
    """Write the state after ``epoch`` completed epochs to ``run_dir/checkpoint/state.safetensors``."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt_sd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt_sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for k, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{k}"] = st
    doc = {"format": FORMAT, "version": VERSION, "epoch": int(epoch), "config": cfg.to_dict(), "history": history,
           "optim_groups": opt_sd["param_groups"], "optim_scalars": scalars, "sched": sched.state_dict(),
           "numpy_rng": rng.bit_generator.state}
    try:
        header = json.dumps(doc, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as err:
        raise SpikeportError(f"cannot record the training state of epoch {epoch} ({err})") from None
    path = Path(run_dir) / STATE
    fileio.write_bytes(path, save(tensors, metadata={"spikeport": header}))
    return path


def _plain(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if torch.is_tensor(obj) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def has_state(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STATE).is_file()


def read_state(run_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header document, tensors) of a state file, both validated for format; a SpikeportError names
    the file and field of any problem."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load

    path = Path(run_dir) / STATE
    fileio.refuse_pickle(path)
    try:
        data = path.read_bytes()
        tensors = load(data)
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise SpikeportError(f"{path}: not a valid safetensors state file ({str(err)[:160]})") from None
    try:
        doc = json.loads(meta.get("spikeport", ""), parse_constant=_refuse)
    except ValueError as err:
        raise SpikeportError(f"{path}: header field 'spikeport' is not valid JSON ({str(err)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SpikeportError(f"{path}: header field 'format' must be {FORMAT!r}")
    for key, kind in (("epoch", int), ("config", dict), ("history", list), ("optim_groups", list),
                      ("optim_scalars", dict), ("sched", dict), ("numpy_rng", dict)):
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            raise SpikeportError(f"{path}: header field {key!r} must be a {kind.__name__}")
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise SpikeportError(f"{path}: tensor '{name}' contains NaN or infinite values")
    return doc, tensors


def _refuse(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_state(run_dir: str | Path, cfg, model: torch.nn.Module, opt: torch.optim.Optimizer, sched,
               rng: np.random.Generator) -> Resumed | None:
    """Restore model, optimizer, scheduler and both generators from ``run_dir``'s state file (None when
    there is none). The file must come from the same configuration: any differing field is named."""
    if not has_state(run_dir):
        return None
    path = Path(run_dir) / STATE
    doc, tensors = read_state(run_dir)
    mine, saved = cfg.to_dict(), doc["config"]
    differ = sorted(k for k in (set(mine) | set(saved)) - SPEED_ONLY if mine.get(k) != saved.get(k))
    if differ:
        raise SpikeportError(f"{path}: the run was started with another configuration (differs in "
                             f"{', '.join(differ[:5])}); resume with the same options or use a new --out folder")
    if not 0 <= doc["epoch"] <= cfg.epochs:
        raise SpikeportError(f"{path}: header field 'epoch' is {doc['epoch']}, outside [0, {cfg.epochs}]")
    _load_model(path, model, tensors)
    _load_optimizer(path, opt, doc, tensors)
    try:
        sched.load_state_dict(doc["sched"])
        rng.bit_generator.state = doc["numpy_rng"]
        torch.set_rng_state(tensors["rng.torch"])
        cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise SpikeportError(f"{path}: cannot restore the scheduler or random generators "
                             f"({type(err).__name__}: {str(err)[:120]})") from None
    return Resumed(epoch=doc["epoch"], history=list(doc["history"]))


def _load_model(path: Path, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    got = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        raise SpikeportError(f"{path}: model tensors do not match the configuration (missing: {missing[:3]}, "
                             f"unexpected: {extra[:3]})")
    for name, ref in expected.items():
        if got[name].shape != ref.shape or got[name].dtype != ref.dtype:
            raise SpikeportError(f"{path}: tensor 'model.{name}' is {tuple(got[name].shape)} {got[name].dtype}, "
                                 f"the model needs {tuple(ref.shape)} {ref.dtype}")
    model.load_state_dict(got)


def _load_optimizer(path: Path, opt: torch.optim.Optimizer, doc: dict, tensors: dict[str, torch.Tensor]) -> None:
    fresh = opt.state_dict()
    groups = doc["optim_groups"]
    if len(groups) != len(fresh["param_groups"]) or any(
            not isinstance(g, dict) or g.get("params") != f["params"] for g, f in zip(groups, fresh["param_groups"])):
        raise SpikeportError(f"{path}: header field 'optim_groups' does not match the model's parameters")
    for g, f in zip(groups, fresh["param_groups"]):  # JSON turned tuples (Adam's betas) into lists
        for key, val in f.items():
            if isinstance(val, tuple) and isinstance(g.get(key), list):
                g[key] = tuple(g[key])
    params = {i: p for f, grp in zip(fresh["param_groups"], opt.param_groups)
              for i, p in zip(f["params"], grp["params"])}
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        if not idx.isdigit() or int(idx) not in params:
            raise SpikeportError(f"{path}: tensor '{name}' names no parameter of the model")
        if t.dim() and t.shape != params[int(idx)].shape:
            raise SpikeportError(f"{path}: tensor '{name}' is {tuple(t.shape)}, its parameter "
                                 f"{tuple(params[int(idx)].shape)}")
        state.setdefault(int(idx), {})[key] = t
    for idx, vals in doc["optim_scalars"].items():
        if not str(idx).isdigit() or int(idx) not in params or not isinstance(vals, dict):
            raise SpikeportError(f"{path}: header field 'optim_scalars' names no parameter ({idx!r})")
        state.setdefault(int(idx), {}).update(vals)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise SpikeportError(f"{path}: cannot restore the optimizer ({type(err).__name__}: {str(err)[:120]})") from None
