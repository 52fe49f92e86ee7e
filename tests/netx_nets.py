"""Networks for the netx tests: hand-built integer nets that exercise every block netx gets from
spikeport, and trained digits nets."""
from __future__ import annotations

import numpy as np

from spikeport.core import loihi
from spikeport.core.linear import Pool2d
from spikeport.core.net import Connection, LoihiNet, Population

DU, DV = 1024, 512


def _lif(vth: int, size: int, bias=None) -> loihi.LIFParams:
    return loihi.LIFParams(du=DU, dv=DV, vth=vth, bias_mant=np.zeros(size, np.int64) if bias is None else bias)


def spatial_net(rng: np.random.Generator, time_steps: int = 6) -> LoihiNet:
    """Graded (1, 6, 8) input -> conv with a non-square kernel -> overlapping pool-only population ->
    conv after a tiling pool (folded) -> flatten + recurrent dense with biases -> dense."""
    w0 = rng.integers(-60, 50, (3, 1, 2, 3))
    c0 = Connection("c0", w0, 0, kind="conv", in_shape=(1, 6, 8), padding=(0, 1))
    p0 = Population("p0", int(np.prod(c0.out_shape)), _lif(1500, 1), c0, shape=c0.out_shape)
    c1 = Connection("c1", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=c0.out_shape,
                    pool=Pool2d((2, 2), (1, 2)))
    p1 = Population("p1", int(np.prod(c1.out_shape)), _lif(8, 1), c1, shape=c1.out_shape)
    w2 = rng.integers(-30, 50, (4, 3, 1, 2))
    c2 = Connection("c2", w2, 0, kind="conv", in_shape=c1.out_shape, pool=Pool2d((2, 2), (2, 2)))
    p2 = Population("p2", int(np.prod(c2.out_shape)), _lif(100, 1), c2, shape=c2.out_shape)
    n3 = 12
    c3 = Connection("c3", rng.integers(-60, 90, (n3, p2.size)), 0, in_shape=c2.out_shape)
    r3 = Connection("r3", rng.integers(-50, 50, (n3, n3)), 0)
    bias = rng.integers(-3, 4, n3) * 64 // 4  # effective bias (mant << 2) a multiple of 64
    p3 = Population("p3", n3, loihi.LIFParams(du=DU, dv=DV, vth=150, bias_mant=bias, bias_exp=2), c3, r3)
    c4 = Connection("c4", rng.integers(-70, 100, (5, n3)), 0)
    p4 = Population("p4", 5, _lif(300, 5), c4)
    return LoihiNet((1, 6, 8), [p0, p1, p2, p3, p4], time_steps, graded_input=True)


def flat_net(rng: np.random.Generator, time_steps: int = 5) -> LoihiNet:
    """Binary 20 inputs -> pruned dense (half the synapses zero, Lava Sparse) with a positive weight
    exponent -> recurrent dense -> dense whose weights are all non-negative (netx's excitatory mode)."""
    w0 = rng.integers(-63, 64, (16, 20)) * (rng.random((16, 20)) < 0.5)
    c0 = Connection("c0", w0, 1, sparse=True)
    p0 = Population("p0", 16, _lif(60, 16), c0)
    c1 = Connection("c1", rng.integers(-90, 120, (10, 16)), 0)
    r1 = Connection("r1", rng.integers(-80, 80, (10, 10)), 0)
    p1 = Population("p1", 10, _lif(250, 10), c1, r1)
    c2 = Connection("c2", rng.integers(0, 90, (4, 10)), 0)
    p2 = Population("p2", 4, _lif(700, 4), c2)
    return LoihiNet((20,), [p0, p1, p2], time_steps, graded_input=False)


def trained(tmp_dir, name: str, **overrides):
    """Train a small digits net (2 epochs) and export it; returns (model.nir path, LoihiNet)."""
    from spikeport.export.nir_export import export_run
    from spikeport.nirfmt.load import load_nir
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    kw = dict(data="digits", epochs=2, hidden=[64], time_steps=12)
    kw.update(overrides)
    out = tmp_dir / name
    train(TrainConfig(**kw), out)
    path = export_run(out)
    return path, load_nir(path)


def digits_input(net: LoihiNet, n: int, encoder: str, offset: int = 0) -> np.ndarray:
    """n digits samples encoded as the network expects: int [T, n, *input_shape]."""
    from sklearn.datasets import load_digits

    from spikeport.data import encode

    x = load_digits().data[offset:offset + n] / 16.0
    return encode(x.reshape(-1, *net.input_shape), net.time_steps, encoder, seed=0).astype(np.int64)


def metrics(run_dir) -> dict:
    import json

    return json.loads((run_dir / "metrics.json").read_text())


def compare(net: LoihiNet, x: np.ndarray, path) -> list[int]:
    """Mismatching spikes per block between spikeport's emulator and netx on Lava (supervised child);
    asserts every layer is active, so that a 0 means something."""
    from spikeport.deploy import emulator
    from spikeport.deploy.supervise import run_netx

    ref = emulator.run(net, x).spikes
    got = run_netx(path, x, timeout_s=300)
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        assert 0.005 < r.mean() < 0.98  # every layer is active: the comparison means something
    return [int((r != g).sum()) for r, g in zip(ref, got)]
