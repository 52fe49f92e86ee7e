"""Whether a training run compiles the fused LIF op's loops (``TrainConfig.compile``), and the compile cache.

``compile = true | false | "auto"`` (default ``"auto"``). ``true`` compiles (falling back to the eager
loops, with a warning, where no compiler is usable), ``false`` never does. ``"auto"`` compiles when the
run is long enough for the steps it saves to repay the one-off compile time:

    saved = steps x elements x SAVED_NS_PER_ELEMENT * 1e-9      (s)
    cost  = COMPILE_COLD_S, or COMPILE_WARM_S when this cache already holds a compiled run of this torch
    compile  <=>  a usable compiler  and  saved >= cost

``elements`` = T x batch x the neurons of the layers that run the fused op (one training step's
neuron-steps). The constants are measured on the 2-vCPU machine (benchmarks/TRAIN_SPEED.md,
"Compiled by default"): the compiled loops save 1.5-4 ns per neuron-step over the eager ones (conv:
~1.6 ns, ~30 ms of a 99 ms step; the rate mlp: ~4 ns, its ops are small); a cold compile of the
forward and backward graphs takes 20-40 s, a warm one (the FX graph cache below) 4-10 s.

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

SAVED_NS_PER_ELEMENT = 1.5  # eager minus compiled, per neuron-step of a training step (conservative: conv)
COMPILE_COLD_S = 40.0  # first compile with an empty cache (forward + 2 backward graphs, 2 loaded cores)
COMPILE_WARM_S = 10.0  # the same with the FX graph cache filled by an earlier run
MARKER = "spikeport-compiled.json"  # in the cache folder: the torch versions that compiled there


@dataclass
class Choice:
    """The path a run takes: ``compiled`` (bool) and why, one line."""

    compiled: bool
    reason: str


def cache_dir() -> Path:
    """The folder of inductor's compile cache: ``TORCHINDUCTOR_CACHE_DIR``, else spikeport's user cache."""
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spikeport" / "inductor"


def use_cache() -> Path:
    """Point inductor's persistent FX graph cache at :func:`cache_dir` (before the first compile)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return folder


def _warm() -> bool:
    """True when this cache folder holds a run compiled by this torch version."""
    try:
        versions = json.loads((cache_dir() / MARKER).read_text(encoding="utf-8")).get("torch", [])
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(versions, list) and torch.__version__ in versions


def mark_warm() -> None:
    """Record in the cache folder that this torch version compiled there (read by :func:`choose`)."""
    from spikeport.files import fileio

    path = cache_dir() / MARKER
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("torch", []) if path.exists() else []
    except (OSError, ValueError, AttributeError):
        old = []
    versions = sorted({*(v for v in old if isinstance(v, str)), torch.__version__})
    fileio.write_json(path, {"torch": versions})


def compiler_problem(device: str) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` here (None: it can)."""
    if device.startswith("cuda"):
        return None if importlib.util.find_spec("triton") else "Triton is not installed"
    cxx = os.environ.get("CXX") or "g++"
    if shutil.which(cxx) or shutil.which("c++") or shutil.which("clang++"):
        return None
    return f"no C++ compiler ({cxx}, c++ or clang++) on PATH"


def choose(setting: bool | str, *, steps: int, elements: int, device: str = "cpu") -> Choice:
    """The path of a run: ``setting`` (True, False or "auto"), ``steps`` training steps in all, ``elements``
    neuron-steps of one step in fused layers. Warns (one line) when compile was asked for and cannot run."""
    if setting is False:
        return Choice(False, "compile = false")
    if elements == 0:
        return Choice(False, "no layer runs the fused op")
    problem = compiler_problem(device)
    if problem:
        if setting is True:
            warnings.warn(f"compile = true but {problem}: training with the eager loops", RuntimeWarning, stacklevel=2)
        return Choice(False, f"{problem}: eager")
    if setting is True:
        return Choice(True, "compile = true")
    saved = steps * elements * SAVED_NS_PER_ELEMENT * 1e-9
    warm = _warm()
    cost = COMPILE_WARM_S if warm else COMPILE_COLD_S
    verdict = "compiled" if saved >= cost else "eager"
    return Choice(saved >= cost, f"auto: {steps} steps x {elements} neuron-steps save ~{saved:.0f} s vs "
                                 f"~{cost:.0f} s to compile ({'warm' if warm else 'cold'} cache): {verdict}")


def fused_elements(model: torch.nn.Module, time_steps: int, batch: int) -> int:
    """Neuron-steps of one training step in the layers that run the fused op (``LIFDense.fused_neuron``)."""
    n = sum(layer.spec.n_out for layer in model.layers if layer.use_fused and layer.fused_neuron() is not None)
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
