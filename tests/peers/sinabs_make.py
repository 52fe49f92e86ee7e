"""Run by Sinabs's own environment (``.venv-sinabs``, made by ``make test-peers``: sinabs 3.1.3, nir 1.0.4), never
imported by the main test environment. Builds a Sinabs network, runs it on Sinabs's own simulator,
exports it with Sinabs's ``to_nir`` and writes, into OUT:

* ``KIND.nir``: the graph as Sinabs writes it (nir 1.0.4's ``nir.write``);
* ``KIND.npz``: ``x`` [N, T, *input] float32 inputs (spikeport's ``--inputs`` layout), ``out`` [T, N,
  n_out] float32 Sinabs's output spike counts per step (several spikes per step possible),
  ``hidden_<node>`` [T, N, *shape] each IAF layer's counts, and for a trained net ``y`` [N] int64
  labels and ``accuracy`` (Sinabs's own, spike-count argmax).

The graph is also read back with nir 1.0.4 and run by Sinabs's ``from_nir``; that simulation must equal
the network's own, so ``out`` is Sinabs's meaning of the graph file, not only of the Python model.

Usage: python sinabs_make.py OUT {dense,cnn,train-cnn}... [--digits DIGITS.npz --epochs E] (train-cnn:
``x_train``/``x_test`` [N, 8, 8] pixels in [0, 1], ``y_train``/``y_test`` [N] labels; each pixel is the
input current of every one of T_STEPS steps; trained on the train split, exported with the test split).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nir
import numpy as np
import sinabs
import sinabs.layers as sl
import torch

T_STEPS, BATCH = 8, 48


def iaf(batch: int) -> sl.IAFSqueeze:
    """Sinabs's IAF as its own ``from_nir`` rebuilds an NIR IF: several spikes per step, subtraction,
    ``min_v_mem = -v_threshold`` (to_nir does not write min_v_mem; from_nir sets this clamp)."""
    return sl.IAFSqueeze(batch_size=batch, min_v_mem=-1.0)


def dense_net(batch: int) -> torch.nn.Sequential:
    """64 -> 32 (Linear with a bias) -> IAF -> 10 -> IAF."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), iaf(batch), torch.nn.Linear(32, 10, bias=False), iaf(batch))
    with torch.no_grad():
        net[0].weight.mul_(2.5)
        net[0].bias.uniform_(-0.1, 0.2)
        net[2].weight.mul_(3)
    return net


def cnn(batch: int) -> torch.nn.Sequential:
    """(1, 8, 8) -> Conv2d 4 -> IAF -> SumPool2d 2 -> Conv2d 8 -> IAF -> Flatten -> Linear 10 -> IAF."""
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), iaf(batch), sl.SumPool2d(2),
                              torch.nn.Conv2d(4, 8, 3, bias=False), iaf(batch), torch.nn.Flatten(),
                              torch.nn.Linear(32, 10, bias=False), iaf(batch))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[3].weight.mul_(2)
        net[6].weight.mul_(2)
    return net


def run(net: torch.nn.Module, x: torch.Tensor, hidden: dict | None = None) -> torch.Tensor:
    """x [N, T, *input] -> output spike counts [T, N, n_out] (Sinabs's squeeze layers fold T into N).
    ``hidden``: filled with every IAF layer's spike counts [T, N, *shape], keyed ``hidden_<index>`` (the
    node name to_nir gives a Sequential's layer)."""
    sinabs.reset_states(net)
    n, t = x.shape[:2]
    layers = enumerate(net) if hidden is not None else ()
    hooks = [m.register_forward_hook(lambda _m, _i, o, _k=k: hidden.__setitem__(
        f"hidden_{_k}", o.reshape(n, t, *o.shape[1:]).transpose(0, 1).numpy()))
        for k, m in layers if isinstance(m, sl.IAFSqueeze)]
    with torch.no_grad():
        out = net(x.reshape(n * t, *x.shape[2:]))
    for h in hooks:
        h.remove()
    if isinstance(out, tuple):  # from_nir's graph executor returns (output, state)
        out = out[0]
    return out.reshape(n, t, -1).transpose(0, 1)


def complete_shapes(graph, net: torch.nn.Sequential, x: torch.Tensor) -> None:
    """Sinabs 3.1.3's to_nir leaves Conv2d's ``input_shape`` and the types of Conv2d, SumPool2d and
    Flatten as None, which nir 1.0.4's ``nir.write`` cannot store: fill them in with the shapes the
    network really sees (one forward pass, batch axis dropped). Nothing else in the graph is touched."""
    seen = {}
    hooks = [m.register_forward_hook(lambda _m, i, o, _k=str(k): seen.__setitem__(_k, (i[0].shape[1:], o.shape[1:])))
             for k, m in enumerate(net)]
    run(net, x)
    for h in hooks:
        h.remove()
    for name, node in graph.nodes.items():
        if name not in seen:
            continue
        shape_in, shape_out = (np.array(s, dtype=np.int64) for s in seen[name])
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            node.input_shape = tuple(int(v) for v in shape_in[-2:])
        for field, key, shape in (("input_type", "input", shape_in), ("output_type", "output", shape_out)):
            types = getattr(node, field, None)
            if isinstance(types, dict) and any(v is None for v in types.values()):
                setattr(node, field, {key: shape})


def export(net: torch.nn.Module, x: torch.Tensor, path: Path) -> None:
    """Sinabs's to_nir, written by nir 1.0.4; read back and run by Sinabs's from_nir (must agree)."""
    n, t = x.shape[:2]
    sinabs.reset_states(net)
    graph = sinabs.to_nir(net, x.reshape(n * t, *x.shape[2:]), model_name="sinabs")
    complete_shapes(graph, net, x)
    nir.write(str(path), graph)
    back = sinabs.from_nir(nir.read(str(path)), batch_size=n)
    mine, theirs = run(net, x), run(back, x)
    if not torch.equal(mine, theirs):
        sys.exit(f"{path}: Sinabs's from_nir does not reproduce the network it exported "
                 f"({int((mine != theirs).sum())} output counts differ)")


def train_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.nn.Sequential:
    """A CNN trained with Sinabs's surrogate gradients (BPTT through its IAF) on the cross-entropy of
    output spike counts; x [N, T, 1, 8, 8]."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), iaf(BATCH), sl.SumPool2d(2),
                              torch.nn.Conv2d(8, 16, 3, bias=False), iaf(BATCH), torch.nn.Flatten(),
                              torch.nn.Linear(64, 10, bias=False), iaf(BATCH))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - BATCH + 1, BATCH):
            idx = perm[i:i + BATCH]
            sinabs.reset_states(net)
            out = net(x[idx].reshape(BATCH * T_STEPS, 1, 8, 8)).reshape(BATCH, T_STEPS, -1).sum(1)
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def frames(pixels: np.ndarray) -> torch.Tensor:
    """[N, 8, 8] pixels in [0, 1] -> [N, T_STEPS, 1, 8, 8]: each pixel is an input current on every step."""
    return torch.as_tensor(pixels, dtype=torch.float32)[:, None, None].expand(-1, T_STEPS, 1, 8, 8).contiguous()


def make(kind: str, out_dir: Path, digits: Path | None, epochs: int) -> None:
    gen = torch.Generator().manual_seed(3)
    extra = {}
    if kind == "dense":
        x = (torch.rand(BATCH, T_STEPS, 64, generator=gen) < 0.3).float()
        net = dense_net(BATCH)
    elif kind == "cnn":
        x = (torch.rand(BATCH, T_STEPS, 1, 8, 8, generator=gen) < 0.3).float()
        net = cnn(BATCH)
    else:
        if digits is None:
            sys.exit("train-cnn needs --digits")
        d = np.load(digits)
        trained = train_cnn(frames(d["x_train"]), torch.as_tensor(d["y_train"]), epochs)
        x, y = frames(d["x_test"]), torch.as_tensor(d["y_test"])
        net = torch.nn.Sequential(*[iaf(len(x)) if isinstance(m, sl.IAFSqueeze) else m for m in trained])
        extra = {"y": y.numpy()}
    out = run(net, x, extra)
    if kind == "train-cnn":
        extra["accuracy"] = np.float64((out.sum(0).argmax(1) == y).float().mean())
        print(f"sinabs accuracy {float(extra['accuracy']):.4f} on {len(y)} test samples")
    out_dir.mkdir(parents=True, exist_ok=True)
    export(net, x, out_dir / f"{kind}.nir")
    np.savez(out_dir / f"{kind}.npz", x=x.numpy(), out=out.numpy(), **extra)
    print(f"wrote {out_dir / kind}.nir/.npz: max {int(out.max())} spikes in one step, {int(out.sum())} in all")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("kinds", nargs="+", choices=["dense", "cnn", "train-cnn"])
    ap.add_argument("--digits", type=Path)
    ap.add_argument("--epochs", type=int, default=15)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"nir {nir.__version__}, sinabs {sinabs.__version__}, torch {torch.__version__}", flush=True)
    for kind in a.kinds:
        make(kind, a.out, a.digits, a.epochs)


if __name__ == "__main__":
    main()
