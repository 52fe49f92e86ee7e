"""Whether a training run compiles the fused LIF op's loops (``TrainConfig.compile``), and the compile cache.

``compile = true | false | "auto"`` (default ``"auto"``). ``true`` compiles (falling back to the eager
loops, with a warning, where no compiler is usable), ``false`` never does. ``"auto"`` compiles when the
run is long enough for the steps it saves to repay the one-off compile time:

    saved = steps x elements x SAVED_NS_PER_ELEMENT * 1e-9      (s)
    cost  = COMPILE_COLD_S, or COMPILE_WARM_S when this cache already holds a compiled run of this torch
    compile  <=>  a usable compiler  and  saved >= cost

``elements`` = T x batch x the neurons of the layers that run the fused op (one training step's
neuron-steps). The constants are measured on the 2-vCPU machine (benchmarks/TRAIN_SPEED_HISTORY.md,
"Compiled by default"): the compiled loops save ~1.3-1.6 ns per neuron-step over the eager ones
(conv: ~30 ms of a 99 ms quiet step; the rate mlp: ~1 ms of 21 ms); the first step of a compiled run
takes 30-60 s with an empty cache (C++ compilation of the forward and backward kernels) and 3-12 s
with a warm one (the FX graph cache below; dynamo still traces). "Warm" is known from a marker the
cache folder keeps: the torch versions and run signatures (T, synaptic decay, bias) compiled there.

Cache: inductor's FX graph cache under ``$XDG_CACHE_HOME/spikeport/inductor`` (``~/.cache/...``) unless
``TORCHINDUCTOR_CACHE_DIR`` is set; a second run loads the compiled kernels instead of building them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from spikeport.errors import SpikeportError

SAVED_NS_PER_ELEMENT = 1.3  # eager minus compiled, per neuron-step of a training step (conv 1.6, mlp-rate 1.3)
COMPILE_COLD_S = 45.0  # first step with an empty cache (measured 30-59 s on the 2 loaded cores)
COMPILE_WARM_S = 10.0  # the same with the FX graph cache filled by an earlier run (measured 3.4-12 s)
MARKER = "spikeport-compiled.json"  # in the cache folder: the torch versions that compiled there


@dataclass
class Choice:
    """The path a run takes: ``compiled`` (bool) and why, one line."""

    compiled: bool
    reason: str


def _torch_default() -> str | None:
    """inductor's own default folder (``/tmp/torchinductor_USER``), which torch writes into
    ``TORCHINDUCTOR_CACHE_DIR`` itself the first time it looks the folder up."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return None
    return os.path.abspath(default_cache_dir())


def cache_dir() -> Path:
    """The folder of inductor's compile cache: ``TORCHINDUCTOR_CACHE_DIR`` when the user set it (not torch,
    with its default), else spikeport's user cache."""
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given and os.path.abspath(given) != _torch_default():
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spikeport" / "inductor"


def use_cache() -> Path | None:
    """Point inductor's persistent FX graph cache at :func:`cache_dir` (before the first compile); None
    (inductor keeps its own default folder) when that folder cannot be made."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return folder


def _compiled_keys() -> list[str]:
    """The "torch version | signature" entries of the cache folder's marker (empty when unreadable)."""
    try:
        keys = json.loads((cache_dir() / MARKER).read_text(encoding="utf-8")).get("compiled", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _key(signature: str) -> str:
    return f"{torch.__version__}|{signature}"


def mark_warm(signature: str = "") -> None:
    """Record in the cache folder that this torch version compiled graphs of ``signature`` there (read by
    :func:`choose`: the graphs are unrolled over T and differ by neuron kind, so the signature names those)."""
    from spikeport.files import fileio

    try:
        fileio.write_json(cache_dir() / MARKER, {"compiled": sorted({*_compiled_keys(), _key(signature)})})
    except (OSError, SpikeportError):  # a read-only cache: the next run just assumes a cold compile
        pass


def signature(cfg) -> str:
    """What the compiled graphs of a run depend on besides the torch version: T, synaptic decay, bias."""
    return f"T={cfg.time_steps},syn={cfg.beta_syn > 0},bias={bool(cfg.bias)}"


def compiler_problem(device: str) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` here (None: it can)."""
    if device.startswith("cuda"):
        return None if importlib.util.find_spec("triton") else "Triton is not installed"
    cxx = os.environ.get("CXX") or "g++"
    if shutil.which(cxx) or shutil.which("c++") or shutil.which("clang++"):
        return None
    return f"no C++ compiler ({cxx}, c++ or clang++) on PATH"


def choose(setting: bool | str, *, steps: int, elements: int, device: str = "cpu", sig: str = "") -> Choice:
    """The path of a run: ``setting`` (True, False or "auto"), ``steps`` training steps in all, ``elements``
    neuron-steps of one step in fused layers, ``sig`` its :func:`signature`. Warns (one line) when the run
    would compile (asked, or chosen by auto) and no compiler is usable; it then trains eagerly."""
    if setting is False:
        return Choice(False, "compile = false")
    if elements == 0:
        return Choice(False, "no layer runs the fused op")
    if setting is True:
        want = Choice(True, "compile = true")
    else:
        saved = steps * elements * SAVED_NS_PER_ELEMENT * 1e-9
        warm = _key(sig) in _compiled_keys()
        cost = COMPILE_WARM_S if warm else COMPILE_COLD_S
        want = Choice(saved >= cost, f"auto: {steps} steps x {elements} neuron-steps save ~{saved:.0f} s vs "
                                     f"~{cost:.0f} s to compile ({'warm' if warm else 'cold'} cache): "
                                     f"{'compiled' if saved >= cost else 'eager'}")
    problem = compiler_problem(device) if want.compiled else None
    if problem:
        warnings.warn(f"torch.compile unusable ({problem}): training with the eager loops", RuntimeWarning,
                      stacklevel=2)
        return Choice(False, f"{want.reason}, but {problem}: eager")
    return want


def fused_elements(model: torch.nn.Module, time_steps: int, batch: int) -> int:
    """Neuron-steps of one training step in the layers that run the fused op (``LIFDense.fused_neuron``;
    recurrent layers, ``weight_rec``, run their own step loop)."""
    n = sum(layer.spec.n_out for layer in model.layers
            if getattr(layer, "use_fused", False) and not hasattr(layer, "weight_rec")
            and layer.fused_neuron() is not None)
    return int(n) * int(time_steps) * int(batch)


def apply(model: torch.nn.Module, compiled: bool) -> None:
    """Set every layer's fused op to the compiled loops (``compiled``) or the eager ones."""
    if compiled:
        use_cache()
    for layer in model.layers:
        layer.compile_fused = bool(compiled)


def fell_back() -> bool:
    """True when a compile failed in this process and the fused op went back to its eager loops."""
    from spikeport.train import fused

    return fused._compiled.cache_info().currsize > 0 and fused._compiled().broken
