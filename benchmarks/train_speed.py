"""Training speed and peak memory: spikeport (fused op / step loop) vs snnTorch vs SpikingJelly on CPU.

One training step = forward over all T steps + BPTT backward + Adam step, loss = cross-entropy of
the output layer's spike counts. Every framework trains the same network from the same initial
weights on the same rate-coded batch, so its first loss must agree with the others (printed as a
check). Each (framework, net) runs in a fresh subprocess so that ``ru_maxrss`` is its own peak;
workers are run in interleaved rounds and per-step times pooled, because other jobs may share the
machine (the load average is printed).

Every framework runs its own best idiom for the net, written as its users would write it.

Nets (LIF, beta = 0.9, theta = 1, reset to zero, no bias):
  mlp       : 784-256-10, T=25, batch 128, rate-coded input
  mlp-direct: the mlp on the direct encoder's graded frame, the same at every step: every framework
              applies the first Linear once to the frame and steps the neurons on that constant current
              (spikeport does so itself for a stride-0 input; the peers are written that way)
  conv      : the network ``spikeport train --arch conv --channels 16 32 --pool 2`` builds, QAT on:
              conv3x3(1->16)-LIF-sumpool2-conv3x3(16->32)-LIF-sumpool2-fc(1568->10)-LIF, 28x28, T=8,
              batch 128, rate-coded. spikeport rows run that model (``checkpoint.build_model``, its own
              QAT: int8 weights, leaks and threshold on Loihi's grid); the peers and the floor run the
              same layers and sum pools with int8 fake-quantized weights (a straight-through
              quantizer registered as a weight parametrization, evaluated once per step), the QAT a
              peer's user writes. Their first loss therefore differs from spikeport's (its threshold
              and leaks are rounded too); the check compares the peers with each other.
  lif       : the neuron alone: the mlp's first-layer current [25, 128, 256] as the only parameter,
              forward + backward, no optimizer step (what the fused op changes, without the GEMMs)
Row ``floor-no-neuron``: the net with a ReLU in place of each neuron (layers, pools, QAT, loss, Adam
alone): the time no neuron implementation can go below.

Usage: ``python benchmarks/train_speed.py [--rounds 3] [--iters 15] [--threads 2] [--nets mlp conv lif]
[--frameworks spikeport-train spikeport-train-dense floor-no-neuron]`` (``--frameworks``: only those rows).
Rows ``spikeport-train``: the model ``spikeport train`` builds, as it runs by default (on the mlp, the
spike-input kernel where it was measured faster than the GEMM on this machine, ``train.spike_input``;
the choice is printed); ``spikeport-train-dense``: the kernel off (``LIFDense.sparse_input = False``);
``spikeport-train-kernel``: the kernel wherever it applies (``sparse_input = "always"``);
``spikeport-train-compile``: the fused op compiled (what ``compile = "auto"`` runs for long runs).
On a machine shared with other jobs, ``--threads 1 --ratio-by cpu`` compares process CPU time, which
descheduling does not inflate (with 2 threads, OpenMP barriers spin while a sibling waits for a core).
Peers are optional (``pip install snntorch spikingjelly``); missing ones are reported and skipped.
SpikingJelly 2.x (Python >= 3.11) runs in its own environment: ``make bench`` makes ``.venv-sj`` and
its workers run with ``--sj-python`` (default ``.venv-sj/bin/python`` where present); every worker reads
the batch the parent wrote (``_save_batch``), so none imports spikeport but spikeport's own.
Rows ``spikingjelly`` (its automatic LIF operator) and ``spikingjelly-compile`` (its model in
``torch.compile``); each table is followed by the interpreter, torch, version and backend of every worker.
``--malloc keep`` applies ``spikeport.train.allocator.keep_freed_memory`` (what ``spikeport train``
does) in every worker, peers included, so the comparison stays like for like.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # spikeport importable from a checkout that is not installed
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
NETS = {"mlp": dict(T=25, B=128), "mlp-direct": dict(T=25, B=128), "conv": dict(T=8, B=128),
        "lif": dict(T=25, B=128)}
BETA, THETA, SLOPE = 0.9, 1.0, 10.0
CONV = dict(arch="conv", channels=[16, 32], hidden=[], pool=2, pool_mode="sum", kernel=3)  # spikeport train's conv
FRAMEWORKS = {
    "mlp": ["spikeport-train", "spikeport-train-dense", "spikeport-train-kernel", "spikeport-fused-compile",
            "spikeport-loop", "spikingjelly", "spikingjelly-compile", "snntorch", "snntorch-hoisted",
            "floor-no-neuron"],
    "mlp-direct": ["spikeport-train", "spikeport-loop", "spikingjelly", "spikingjelly-compile", "snntorch",
                   "floor-no-neuron"],
    "conv": ["spikeport-train", "spikeport-train-compile", "spikeport-loop", "spikingjelly", "spikingjelly-compile",
             "snntorch", "floor-no-neuron"],
    "lif": ["spikeport-fused", "spikeport-fused-compile", "spikeport-loop", "spikingjelly", "snntorch"],
}
PEERS = {"spikingjelly": "spikingjelly", "snntorch": "snntorch"}
# SpikingJelly 2.x needs Python >= 3.11 and torch >= 2.6: `make bench` puts it in its own environment,
# whose interpreter runs the SpikingJelly workers (the worker imports no spikeport there; it reads the
# batch the parent wrote). Without that environment, SpikingJelly runs in the parent's interpreter.
SJ_PYTHON = ROOT / ".venv-sj" / "bin" / "python"


# --- worker side: build one framework's net, train, report -------------------------------------------
def _batch(torch, net: str, images_path: Path):
    """Rate-coded images [T, B, 784] float 0/1 (Fashion-MNIST if present, else uniform [0, 0.6])
    and labels [B]; identical in every worker. ``mlp-direct``: the direct encoder's graded frame,
    the same at every step, as spikeport's training loop passes it (one frame expanded over time,
    ``train.loop.float_input``); every framework gets this same tensor."""
    import numpy as np

    from spikeport.data import encode

    T, B = NETS[net]["T"], NETS[net]["B"]
    rng = np.random.default_rng(0)
    if images_path.exists():
        raw = np.frombuffer(gzip.open(images_path).read(), np.uint8, offset=16).reshape(-1, 784)
        images = raw[:B] / 255.0
    else:
        images = rng.random((B, 784)) * 0.6
    if net == "mlp-direct":
        from spikeport.train.loop import float_input

        return float_input(encode(images, T, "direct"), "direct"), torch.from_numpy(rng.integers(0, 10, B))
    x = torch.from_numpy(encode(images, T, "rate", seed=0).astype(np.float32))
    return x, torch.from_numpy(rng.integers(0, 10, B))


def _save_batch(net: str, images_path: Path, path: Path) -> None:
    """Write the net's batch for the workers (npz: x [T, B, 784] float32, or for a stride-0 batch one
    frame and T; y [B] int64), so that a worker in another environment needs no spikeport."""
    import numpy as np
    import torch

    x, y = _batch(torch, net, images_path)
    frame = x.stride(0) == 0
    np.savez(path, x=(x[:1] if frame else x).contiguous().numpy(), T=x.shape[0], frame=frame, y=y.numpy())


def _load_batch(torch, path: Path):
    """The batch :func:`_save_batch` wrote: (x [T, B, 784] float32, y [B]); an expanded frame comes
    back as the same stride-0 view the training loop passes."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        x, y = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
        if bool(z["frame"]):
            x = x.expand(int(z["T"]), *x.shape[1:])
    return x, y


def _weights(torch, net: str):
    """Initial weights shared by all frameworks (scaled so that hidden layers fire at 5-20 %)."""
    gen = torch.Generator().manual_seed(1)
    net = "mlp" if net == "mlp-direct" else net
    shapes = {"mlp": [(256, 784), (10, 256)], "conv": [(16, 1, 3, 3), (32, 16, 3, 3), (10, 1568)]}[net]
    gains = {"mlp": [2.5, 4.0], "conv": [3.0, 1.5, 2.5]}[net]  # conv: sum pools (spikeport's init: / pool)
    out = []
    for shape, gain in zip(shapes, gains):
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        out.append((torch.rand(shape, generator=gen) * 2 - 1) * gain / fan_in ** 0.5)
    return out


def _current_holder(torch):
    """The ``lif`` net's model: one parameter, the input current [T, B, 256]."""
    m = torch.nn.Module()
    m.cur = torch.nn.Parameter(torch.zeros(NETS["lif"]["T"], NETS["lif"]["B"], 256))
    return m


def _int8_weights(torch, modules) -> list:
    """QAT as a peer's user writes it: each module's weight fake-quantized to int8 (symmetric, per tensor,
    straight-through gradient), registered as a parametrization; returns the trainable originals. Forwards
    run inside ``parametrize.cached()``, so the quantizer runs once per step."""
    from torch import nn
    from torch.nn.utils import parametrize

    class Int8(nn.Module):
        def forward(self, w):
            s = w.detach().abs().max().clamp_min(1e-12) / 127
            return w + (torch.clamp(torch.round(w / s), -127, 127) * s - w).detach()
    for m in modules:
        parametrize.register_parametrization(m, "weight", Int8())
    return [m.parametrizations.weight.original for m in modules]


def _cached(forward):
    """``forward`` with the weight parametrizations evaluated once per call."""
    from torch.nn.utils import parametrize

    def run(m, x):
        with parametrize.cached():
            return forward(m, x)
    return run


def _frame_once(x):
    """The first frame of a stride-0 input [T, B, ...] (mlp-direct), else None."""
    return x[0] if x.shape[0] > 1 and x.stride(0) == 0 else None


def _spikeport_model(torch, net: str, impl: str):
    """spikeport: ``train`` the model ``spikeport train`` runs (mlp: SpikingMLP, fused op, constant input
    projected once, spike input through ``train.spike_input`` where measured faster; conv:
    ``checkpoint.build_model``'s conv net with its QAT), ``train-dense`` / ``train-kernel`` the mlp with the
    kernel off / always on, ``train-compile`` the conv net with the fused op compiled, ``loop`` the same
    model with the step loop (``use_fused = False``), or torch layers + ``cuba_lif_multistep`` (fused /
    compile: the mlp) or + ReLU (floor)."""
    from torch import nn

    from spikeport.train.fused import cuba_lif_multistep

    if impl in ("train", "train-dense", "train-kernel", "loop") and net.startswith("mlp"):
        from spikeport.train.model import LayerSpec, LIFDense, SpikingMLP

        LIFDense.use_fused = impl != "loop"
        specs = [LayerSpec(784, 256, beta_syn=0.0, beta_mem=BETA, theta=THETA),
                 LayerSpec(256, 10, beta_syn=0.0, beta_mem=BETA, theta=THETA)]
        model = SpikingMLP(specs, graded_input=False, input_levels=1, surrogate_slope=SLOPE)
        for layer in model.layers:
            layer.sparse_input = {"train-dense": False, "train-kernel": "always"}.get(impl, layer.sparse_input)
        return model, [l.weight for l in model.layers], lambda m, x: m(x)[-1]
    if impl in ("train", "train-compile", "loop") and net == "conv":
        from spikeport.train import checkpoint, compiling
        from spikeport.train.config import TrainConfig

        cfg = TrainConfig(data="fashion-mnist", beta_syn=0.0, beta_mem=BETA, theta=THETA, surrogate_slope=SLOPE,
                          time_steps=NETS["conv"]["T"], encoder="rate", qat=True, **CONV)
        model = checkpoint.build_model(cfg, 784, 10, (1, 28, 28))
        if impl == "train-compile":
            compiling.use_cache()
        for layer in model.layers:
            layer.use_fused, layer.compile_fused = impl != "loop", impl == "train-compile"
        return model, [l.weight for l in model.layers], lambda m, x: m(x, qat=cfg.qat)[-1]
    fire = lambda c, *a, **k: cuba_lif_multistep(c, *a, compile=impl == "compile", **k)  # noqa: E731
    if impl == "floor":  # no neuron: one ReLU, so the step is the layers, loss and Adam alone
        fire = lambda c, *a, **k: torch.relu(c)  # noqa: E731

    def lif(c):  # c [T, B, ...]
        return fire(c, 0.0, BETA, THETA, slope=SLOPE)

    if net == "lif":
        model = _current_holder(torch)
        return model, [model.cur], lambda m, x: lif(m.cur)

    if net.startswith("mlp"):
        model = nn.Sequential(nn.Linear(784, 256, bias=False), nn.Linear(256, 10, bias=False))

        def forward(m, x):
            frame = _frame_once(x)
            cur = m[0](x) if frame is None else m[0](frame).expand(x.shape[0], -1, -1)
            return lif(m[1](lif(cur)))
        return model, [model[0].weight, model[1].weight], forward
    # the conv floor: spikeport's conv net with ReLU neurons and the peers' int8 QAT
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.Conv2d(16, 32, 3, padding=1, bias=False),
                          nn.Linear(1568, 10, bias=False))
    params = _int8_weights(torch, list(model))

    def per_frame(f, h):  # apply a frame-wise layer to [T, B, ...]
        return f(h.flatten(0, 1)).unflatten(0, h.shape[:2])

    def sum_pool(z):
        return torch.nn.functional.avg_pool2d(z, 2, divisor_override=1)

    def forward(m, x):
        h = x.view(*x.shape[:2], 1, 28, 28)
        h = per_frame(sum_pool, lif(per_frame(m[0], h)))
        h = per_frame(sum_pool, lif(per_frame(m[1], h)))
        return lif(m[2](h.flatten(2)))
    return model, params, _cached(forward)


def _spikingjelly_model(torch, net: str, compile: bool = False):
    """SpikingJelly multi-step: layer.* and neuron.LIFNode(step_mode='m') with no backend argument
    (2.x removed it and picks its operator itself, ``functional.lif_multi_step``; 0.0.0.0.14's default
    is 'torch'). ``compile``: the model wrapped in ``torch.compile`` (the state reset stays outside).
    mlp-direct: the first Linear (single-step) applied once to the frame, its output repeated over time as a
    stride-0 view, then the multi-step neurons. conv: sum pools (AvgPool2d with divisor 1), int8 QAT."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    from torch import nn

    def lif():  # V = (1 - 1/tau) V + X with tau = 10 -> beta 0.9; hard reset to 0, reset not detached
        return neuron.LIFNode(tau=1 / (1 - BETA), decay_input=False, v_threshold=THETA, v_reset=0.0,
                              surrogate_function=surrogate.SoftSign(alpha=SLOPE), step_mode="m")
    if net == "lif":
        model = _current_holder(torch)
        model.node = lif()

        def forward_lif(m, x):
            functional.reset_net(m)
            return m.node(m.cur)
        return model, [model.cur], forward_lif
    if net == "mlp-direct":
        class FrameOnce(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.lif1 = layer.Linear(784, 256, bias=False), lif()  # fc1 single-step: one frame
                self.fc2, self.lif2 = layer.Linear(256, 10, bias=False, step_mode="m"), lif()

            def forward(self, frame, steps: int):
                cur = self.fc1(frame)
                return self.lif2(self.fc2(self.lif1(cur.unsqueeze(0).expand(steps, *cur.shape))))
        model = FrameOnce()
        run = torch.compile(model) if compile else model

        def forward_direct(m, x):
            functional.reset_net(m)
            return run(x[0], x.shape[0])
        return model, [model.fc1.weight, model.fc2.weight], forward_direct
    if net == "mlp":
        model = nn.Sequential(layer.Linear(784, 256, bias=False, step_mode="m"), lif(),
                              layer.Linear(256, 10, bias=False, step_mode="m"), lif())
        params = [model[0].weight, model[2].weight]
    else:
        model = nn.Sequential(layer.Conv2d(1, 16, 3, padding=1, bias=False, step_mode="m"), lif(),
                              layer.AvgPool2d(2, divisor_override=1, step_mode="m"),
                              layer.Conv2d(16, 32, 3, padding=1, bias=False, step_mode="m"), lif(),
                              layer.AvgPool2d(2, divisor_override=1, step_mode="m"), layer.Flatten(step_mode="m"),
                              layer.Linear(1568, 10, bias=False, step_mode="m"), lif())
        params = _int8_weights(torch, [model[0], model[3], model[7]])

    run = torch.compile(model) if compile else model

    def forward(m, x):
        functional.reset_net(m)
        return run(x if net.startswith("mlp") else x.view(*x.shape[:2], 1, 28, 28))
    return model, params, forward if net == "mlp" else _cached(forward)


def _spikingjelly_backend(torch) -> str:
    """The LIF operator SpikingJelly runs here on CPU for this net's surrogate (read from its code)."""
    from spikingjelly.activation_based import surrogate

    try:
        from spikingjelly._ops.surrogate import _surrogate_spec
    except ImportError:  # 0.0.0.0.14
        return "LIFNode backend 'torch' (Python step loop, autograd)"
    if _surrogate_spec(surrogate.SoftSign(alpha=SLOPE)) is None:
        return "Torch reference (Python step loop, autograd)"
    return "auto: torch.ops.sj_lif registered op (CPU forward/backward implementations, hand-written BPTT)"


def _snntorch_model(torch, net: str, hoisted: bool):
    """snnTorch: snn.Leaky(reset_mechanism='zero') stepped in a Python loop (the tutorials' form:
    layers applied per step; ``hoisted``: the MLP's first Linear applied to all T steps at once).
    mlp-direct: the first Linear applied once to the frame (the tutorials' static-input form), its output
    fed to the neurons at every step. conv: sum pools (AvgPool2d with divisor 1), int8 QAT."""
    import snntorch as snn
    from snntorch import surrogate
    from torch import nn

    def leaky():
        return snn.Leaky(beta=BETA, threshold=THETA, reset_mechanism="zero", spike_grad=surrogate.fast_sigmoid(SLOPE))
    if net == "lif":
        model = _current_holder(torch)
        model.node = leaky()

        def forward_lif(m, x):
            mem, out = m.node.reset_mem(), []
            for t in range(m.cur.shape[0]):
                spk, mem = m.node(m.cur[t], mem)
                out.append(spk)
            return torch.stack(out)
        return model, [model.cur], forward_lif
    if net.startswith("mlp"):
        model = nn.ModuleList([nn.Linear(784, 256, bias=False), leaky(), nn.Linear(256, 10, bias=False), leaky()])
        params = [model[0].weight, model[2].weight]
    else:
        model = nn.ModuleList([nn.Conv2d(1, 16, 3, padding=1, bias=False), leaky(), nn.AvgPool2d(2, divisor_override=1),
                               nn.Conv2d(16, 32, 3, padding=1, bias=False), leaky(),
                               nn.AvgPool2d(2, divisor_override=1), nn.Flatten(), nn.Linear(1568, 10, bias=False),
                               leaky()])
        params = _int8_weights(torch, [model[0], model[3], model[7]])
    hoisted = hoisted or net == "mlp-direct"

    def forward(m, x):
        mems = {i: mod.reset_mem() for i, mod in enumerate(m) if isinstance(mod, snn.Leaky)}
        first = (m[0](x[0]) if net == "mlp-direct" else m[0](x)) if hoisted else None
        out = []
        for t in range(x.shape[0]):
            h = (first if net == "mlp-direct" else first[t]) if hoisted else (
                x[t] if net.startswith("mlp") else x[t].view(-1, 1, 28, 28))
            for i, mod in enumerate(m):
                if hoisted and i == 0:
                    continue
                if i in mems:
                    h, mems[i] = mod(h, mems[i])
                else:
                    h = mod(h)
            out.append(h)
        return torch.stack(out)
    return model, params, _cached(forward) if net == "conv" else forward


def _saved_mib(torch, forward, model, x) -> float:
    """MiB of distinct tensor storages autograd keeps for backward after one forward (the activation
    memory of BPTT, independent of allocator and interpreter; parameters excluded)."""
    seen, params = {}, {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(model, x)
    del out
    return sum(seen.values()) / 2 ** 20


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker(framework: str, net: str, args) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    if args.malloc == "keep":  # loaded from its file: a SpikingJelly worker's environment has no spikeport
        import importlib.util

        spec = importlib.util.spec_from_file_location("_allocator", ROOT / "spikeport" / "train" / "allocator.py")
        allocator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(allocator)
        allocator.keep_freed_memory()
    device, cuda = args.device, args.device == "cuda"
    torch.manual_seed(0)
    impls = {"spikeport-train": "train", "spikeport-train-dense": "train-dense",
             "spikeport-train-kernel": "train-kernel", "spikeport-train-compile": "train-compile", "spikeport-fused": "fused",
             "spikeport-fused-compile": "compile", "spikeport-loop": "loop", "floor-no-neuron": "floor"}
    if framework in impls:
        model, params, forward = _spikeport_model(torch, net, impls[framework])
    elif framework.startswith("spikingjelly"):
        model, params, forward = _spikingjelly_model(torch, net, compile=framework.endswith("compile"))
    else:
        model, params, forward = _snntorch_model(torch, net, hoisted=framework == "snntorch-hoisted")
    x, y = _load_batch(torch, Path(args.batch))
    init = [x @ _weights(torch, "mlp")[0].t()] if net == "lif" else _weights(torch, net)
    with torch.no_grad():
        for p, w in zip(params, init):
            p.copy_(w)
    model, x, y = model.to(device), x.to(device), y.to(device)
    opt = None if net == "lif" else torch.optim.Adam(model.parameters(), lr=1e-3)
    rss_before = torch.cuda.memory_allocated() / 1024 if cuda else _vm_rss_kib()

    def step():
        out = forward(model, x)
        loss = F.cross_entropy(out.sum(0), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if opt is not None:
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        return loss, out

    saved = _saved_mib(torch, forward, model, x)
    t0 = time.perf_counter()
    first_loss, out = step()
    first_loss, out_rate = float(first_loss), float(out.mean())
    first_step_s = time.perf_counter() - t0
    for _ in range(2):
        step()
    times, cpu_times = [], []
    for _ in range(args.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated() / 1024 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    choices = {}
    if framework.startswith("spikeport-train") and net.startswith("mlp"):  # the spike-input paths it took
        from spikeport.train import spike_input

        if spike_input._CHOOSER:
            made = spike_input._CHOOSER[0]
            choices = {k: f"{v} ({', '.join(f'{n} {t * 1e3:.2f}' for n, t in made.timings.get(k, {}).items())} ms)"
                       if k in made.timings else f"{v} (cached)" for k, v in made.choices().items()}
    return dict(framework=framework, net=net, choices=choices, times=times, cpu_times=cpu_times,
                first_loss=first_loss, out_rate=out_rate,
                first_step_s=first_step_s, saved_mib=saved, peak_rss_mib=peak / 1024, rss_before_mib=rss_before / 1024,
                batch=int(x.shape[1]), env=_worker_env(torch, framework))


def _worker_env(torch, framework: str) -> dict:
    """Interpreter, torch and the framework's version and backend as the worker saw them."""
    import importlib.metadata as md

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_config": "CUDA build" if torch.version.cuda else "CPU build"}
    package = PEERS.get(framework.split("-")[0])
    if package:
        env[package] = md.version(package)
    if package == "spikingjelly":
        env["backend"] = _spikingjelly_backend(torch) + (", model in torch.compile" if framework.endswith("compile") else "")
    return env


# --- parent side: rounds of fresh workers, the table ---------------------------------------------------
def _versions() -> dict:
    import importlib.metadata as md

    import spikeport

    out = {"spikeport": spikeport.__version__}
    for name in ("torch", "numpy", "snntorch", "spikingjelly"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _interpreter(framework: str, args) -> str:
    """The worker's Python: ``--sj-python`` for SpikingJelly, this interpreter for the others."""
    return args.sj_python if framework.startswith("spikingjelly") and args.sj_python else sys.executable


def _peer_version(package: str, python: str) -> str:
    """``package``'s version in the environment of ``python`` ("not installed" when absent)."""
    code = ("import importlib.metadata as m, sys\ntry: print(m.version(sys.argv[1]))\n"
            "except m.PackageNotFoundError: print('not installed')")
    proc = subprocess.run([python, "-c", code, package], capture_output=True, text=True)
    return proc.stdout.strip() or "not installed"


def _run_worker(framework: str, net: str, args, batch: Path) -> dict | None:
    cmd = [_interpreter(framework, args), __file__, "--worker", framework, "--nets", net, "--iters", str(args.iters),
           "--threads", str(args.threads), "--device", args.device, "--batch", str(batch), "--malloc", args.malloc]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(f"  {framework}/{net} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: same code on the GPU; memory is then torch.cuda.max_memory_allocated")
    ap.add_argument("--images", default=str(FASHION), help="idx .gz images (default: Fashion-MNIST's train "
                    "set where installed; uniform [0, 0.6] pixels otherwise)")
    ap.add_argument("--ratio-by", default="median", choices=["median", "best", "cpu"],
                    help="time the speed ratios compare: median or best wall time, or median process CPU time")
    ap.add_argument("--malloc", default="default", choices=["default", "keep"],
                    help="keep: every worker keeps freed memory (glibc mallopt, as `spikeport train` does)")
    ap.add_argument("--sj-python", default=str(SJ_PYTHON) if SJ_PYTHON.exists() else "",
                    help="interpreter of the SpikingJelly workers (default: .venv-sj/bin/python made by "
                         "`make bench` where present, else this one)")
    ap.add_argument("--frameworks", nargs="+", default=None,
                    help="only these rows (e.g. spikeport-train spikeport-train-dense floor-no-neuron)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.nets[0], args)))
        return
    versions = _versions()
    if args.sj_python:
        versions["spikingjelly"] = _peer_version("spikingjelly", args.sj_python)
    gpu = ""
    if args.device == "cuda":
        import torch
        gpu = f", GPU {torch.cuda.get_device_name()}"
    print(f"machine: {_cpu()}, {os.cpu_count()} logical CPUs, torch threads {args.threads}{gpu}, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"input: {'rate-coded ' + Path(args.images).name if Path(args.images).exists() else 'uniform random'}; "
          f"allocator: {args.malloc}; load average at start: {os.getloadavg()[0]:.2f}; rounds {args.rounds} x {args.iters} timed steps "
          "per framework (after 3 warm-up steps), each worker a fresh process")
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets:
            names = [f for f in FRAMEWORKS[net] if PEERS.get(f.split("-")[0]) is None
                     or versions[PEERS[f.split("-")[0]]] != "not installed"]
            names = [f for f in names if args.frameworks is None or f in args.frameworks]
            batch = Path(tmp) / f"{net}.npz"
            _save_batch(net, Path(args.images), batch)
            runs: dict[str, list[dict]] = {f: [] for f in names}
            for _ in range(args.rounds):
                for f in names:
                    r = _run_worker(f, net, args, batch)
                    if r:
                        runs[f].append(r)
            _table(net, runs, args.device, args.ratio_by)
            _environments(runs)
            for f, rs in runs.items():
                for key, how in (rs[0].get("choices", {}) if rs else {}).items():
                    print(f"{f}: {key}: {how}")
            print(f"load average after {net}: {os.getloadavg()[0]:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _environments(runs: dict[str, list[dict]]) -> None:
    """One line per distinct worker environment (interpreter, torch, peer version and backend)."""
    seen: dict[str, list[str]] = {}
    for f, rs in runs.items():
        if rs:
            env = ", ".join(f"{k} {v}" for k, v in rs[0]["env"].items())
            seen.setdefault(env, []).append(f)
    for env, names in seen.items():
        print(f"environment of {', '.join(names)}: {env}")


def _table(net: str, runs: dict[str, list[dict]], device: str, ratio_by: str) -> None:
    cfg = NETS[net]
    rows = {}
    for f, rs in runs.items():
        if not rs:
            continue
        times = [t for r in rs for t in r["times"]]
        med = statistics.median(times)
        rows[f] = dict(median_ms=med * 1e3, best_ms=min(times) * 1e3, samples_s=rs[0]["batch"] / med,
                       cpu_ms=statistics.median(t for r in rs for t in r["cpu_times"]) * 1e3,
                       peak=max(r["peak_rss_mib"] for r in rs), delta=max(r["peak_rss_mib"] - r["rss_before_mib"] for r in rs),
                       saved=rs[0]["saved_mib"], loss=rs[0]["first_loss"], first_s=statistics.median(r["first_step_s"] for r in rs))
    if not rows:
        return
    what = "forward + backward" if net == "lif" else "forward + backward + Adam"
    print(f"\n## {net}: T={cfg['T']}, batch {cfg['B']}, {what}, {device}")
    peers = [p for p in ("spikingjelly", "spikingjelly-compile", "snntorch", "spikeport-loop") if p in rows]
    head = "| framework | ms/step median (best) | CPU ms/step | samples/s | " + \
        " | ".join(f"x vs {p} ({ratio_by})" for p in peers) + \
           f" | saved for backward MiB | peak {'CUDA alloc' if device == 'cuda' else 'RSS'} MiB (training part) | first loss | first step s |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for f, r in rows.items():
        key = {"median": "median_ms", "best": "best_ms", "cpu": "cpu_ms"}[ratio_by]
        ratios = " | ".join(f"{rows[p][key] / r[key]:.2f}" for p in peers)
        print(f"| {f} | {r['median_ms']:.1f} ({r['best_ms']:.1f}) | {r['cpu_ms']:.1f} | {r['samples_s']:.0f} | {ratios} | "
              f"{r['saved']:.1f} | {r['peak']:.0f} ({r['delta']:.0f}) | {r['loss']:.6f} | {r['first_s']:.2f} |")
    losses = {f: r["loss"] for f, r in rows.items() if f != "floor-no-neuron"}
    # conv: spikeport's own QAT (threshold and leaks on Loihi's grid too) against the peers' int8 weights
    groups = {"spikeport rows": [f for f in losses if f.startswith("spikeport")],
              "peer rows": [f for f in losses if not f.startswith("spikeport")]} if net == "conv" else \
        {"all but the floor row": list(losses)}
    for name, members in groups.items():
        if not members:
            continue
        vals = [losses[f] for f in members]
        spread = max(vals) - min(vals)
        print(f"first-loss check ({name}): {'equal' if spread <= 1e-4 * max(vals) else 'DIFFERENT'}"
              f" (spread {spread:.2e} over {len(vals)} rows)")


if __name__ == "__main__":
    main()
