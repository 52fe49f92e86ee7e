"""train.spike_input: the binary-input product against torch's dense product and autograd's gradients.

Reference: ``x @ w.t()`` in float64, differentiated by torch autograd (an independent implementation:
a GEMM, not gathers). Shapes include empty rows, densities 0 and 1, an output width below the vector
length, and a row count that does not divide into the weight gradient's blocks.
"""
from __future__ import annotations

import pytest
import torch

from spikeport.files import fastest
from spikeport.train import spike_input
from spikeport.train.model import LayerSpec, LIFDense
from spikeport.train.spike_input import SpikeLinear, active_index, spike_linear

F64 = torch.float64


def _binary(m, k, density, seed, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(m, k, generator=gen, dtype=F64) < density).to(dtype)
    if m > 3:
        x[1] = 0  # an empty row
        x[3] = 1  # a full row
    return x


def _sparse_and_dense(x, w, g, x_grad):
    """(y, gw, gx) of SpikeLinear and of the dense product, both differentiated by autograd."""
    found = active_index(x)
    assert found is not None
    out = []
    for f in (lambda a, b: SpikeLinear.apply(a, b, *found), lambda a, b: a @ b.t()):
        xa, wa = x.clone().requires_grad_(x_grad), w.clone().requires_grad_()
        y = f(xa, wa)
        y.backward(g)
        out.append((y.detach(), wa.grad, xa.grad))
    return out


@pytest.mark.parametrize("m,k,n,density,seed", [
    (3200 // 16, 784 // 4, 256, 0.28, 0),
    (97, 33, 10, 0.05, 1),      # rows not divisible by the blocks, narrow output
    (64, 50, 70, 0.0, 2),       # nothing active but the full row 3
    (40, 20, 9, 1.0, 3),        # everything active but the empty row 1
    (5, 7, 3, 0.5, 4),
    (1, 6, 4, 0.5, 5),          # one row (fewer rows than blocks)
])
@pytest.mark.parametrize("x_grad", [False, True])
def test_float64_equals_dense_product_and_autograd(m, k, n, density, seed, x_grad):
    x = _binary(m, k, density, seed)
    gen = torch.Generator().manual_seed(100 + seed)
    w = torch.randn(n, k, generator=gen, dtype=F64)
    g = torch.randn(m, n, generator=gen, dtype=F64)
    (ys, gws, gxs), (yd, gwd, gxd) = _sparse_and_dense(x, w, g, x_grad)
    torch.testing.assert_close(ys, yd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gws, gwd, rtol=1e-12, atol=1e-12)
    assert gws.shape == w.shape
    if x_grad:
        torch.testing.assert_close(gxs, gxd, rtol=1e-12, atol=1e-12)
    else:
        assert gxs is None


def test_float32_close_to_float64_dense():
    x = _binary(300, 120, 0.2, 7, torch.float32)
    w = torch.randn(80, 120, generator=torch.Generator().manual_seed(8))
    g = torch.randn(300, 80, generator=torch.Generator().manual_seed(9))
    (ys, gws, _), _ = _sparse_and_dense(x, w, g, False)
    assert ys.dtype == gws.dtype == torch.float32
    torch.testing.assert_close(ys.double(), x.double() @ w.double().t(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gws.double(), g.double().t() @ x.double(), rtol=1e-5, atol=1e-4)


def test_same_bits_on_every_call_and_any_thread_count():
    x = _binary(257, 90, 0.3, 11, torch.float32)
    w = torch.randn(128, 90, generator=torch.Generator().manual_seed(12)).requires_grad_()
    g = torch.randn(257, 128, generator=torch.Generator().manual_seed(13))
    threads = torch.get_num_threads()
    results = []
    try:
        for t in (1, 2, 1):
            torch.set_num_threads(t)
            w.grad = None
            y = spike_linear(x, w, max_density=1.0, choose=False)
            y.backward(g)
            results.append((y.detach().clone(), w.grad.clone()))
    finally:
        torch.set_num_threads(threads)
    for y, gw in results[1:]:
        assert torch.equal(y, results[0][0]) and torch.equal(gw, results[0][1])


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, float("nan")])
def test_non_binary_input_falls_back(bad):
    x = _binary(30, 20, 0.2, 14)
    w = torch.randn(128, 20, dtype=F64)
    assert spike_linear(x, w, max_density=1.0, choose=False) is not None
    x[7, 3] = bad
    assert active_index(x) is None
    assert spike_linear(x, w, max_density=1.0, choose=False) is None


def test_switch_reads_density_and_dtype():
    """Where the kernel may run at all (before any timing): binary, one float dtype, density within the cap."""
    w = torch.randn(128, 200, dtype=F64)
    x = _binary(100, 200, 0.2, 15)
    density = float(x.mean())
    assert spike_linear(x, w, max_density=density, choose=False) is not None  # at the cap: the kernel may run
    assert spike_linear(x, w, max_density=density - 1e-3, choose=False) is None  # above it: dense
    assert spike_linear(x.float(), w, max_density=1.0, choose=False) is None  # mixed dtypes
    assert spike_linear(x.t(), torch.randn(128, 100, dtype=F64), max_density=1.0, choose=False) is None
    assert spike_linear(x[:, :150].contiguous(), w, max_density=1.0, choose=False) is None  # the GEMM reports it
    with pytest.raises(ValueError, match="do not match"):
        SpikeLinear.apply(x[:, :150].contiguous(), w, *active_index(x))
    # the default caps: data input vs an input that needs its gradient (a hidden layer)
    lo, hi = spike_input.SPARSE_MAX_DENSITY_GRAD, spike_input.SPARSE_MAX_DENSITY
    between = _binary(100, 200, (lo + hi) / 2, 18)
    between[1], between[3] = between[0], between[2]  # no forced empty / full rows: density near the middle
    assert lo < float(between.mean()) < hi
    assert spike_linear(between, w, choose=False) is not None
    assert spike_linear(between.requires_grad_(), w, choose=False) is None


def test_layer_uses_sparse_path_on_spikes_and_matches_dense(monkeypatch):
    """LIFDense with spike input: the same spikes and gradients (float64) as with the path switched off."""
    torch.manual_seed(0)
    layer = LIFDense(LayerSpec(120, 128, beta_syn=0.5, beta_mem=0.9, theta=0.5)).double()
    x = (torch.rand(6, 10, 120, dtype=F64) < 0.1).to(F64)
    calls = []
    real = spike_input.SpikeLinear.apply
    monkeypatch.setattr(spike_input.SpikeLinear, "apply", lambda *a: calls.append(1) or real(*a))
    out = []
    for sparse in ("always", False):
        layer.sparse_input = sparse
        layer.weight.grad = None
        s = layer(x)
        (s * torch.linspace(-1, 1, 128, dtype=F64)).sum().backward()
        out.append((s.detach(), layer.weight.grad.clone()))
    assert calls == [1]
    assert torch.equal(out[0][0], out[1][0])
    assert out[0][0].sum() > 0
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("density", [0.05, 0.4])
def test_both_weight_gradient_forms_equal_autograd(monkeypatch, density):
    """Scatter-adds and the table form (forced by moving GW_TABLE_DENSITY) on the same float64 batch."""
    x = _binary(131, 45, density, 16)  # 131 rows: a partial table group at the end
    gen = torch.Generator().manual_seed(17)
    w = torch.randn(66, 45, generator=gen, dtype=F64)
    g = torch.randn(131, 66, generator=gen, dtype=F64)
    for threshold in (0.0, 1.1):
        monkeypatch.setattr(spike_input, "GW_TABLE_DENSITY", threshold)
        (_, gws, _), (_, gwd, _) = _sparse_and_dense(x, w, g, False)
        torch.testing.assert_close(gws, gwd, rtol=1e-12, atol=1e-12)


def test_rate_coded_training_takes_sparse_path_and_resumes_bit_identical(tmp_path, monkeypatch):
    """``spikeport train`` on rate-coded digits (first layer 64 -> 128, binary input near 30 % density),
    the kernel measured faster: the sparse path runs, and an interrupted run resumed from its checkpoint
    ends with the same bits."""
    from safetensors.torch import load_file

    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    cfg = dict(data="digits", encoder="rate", epochs=2, hidden=[128], time_steps=4, limit=160, seed=3,
               batch_size=40)
    calls = []
    real = spike_input.SpikeLinear.apply
    monkeypatch.setattr(spike_input.SpikeLinear, "apply", lambda *a: calls.append(1) or real(*a))
    kernel_wins = fastest.Chooser(None, machine_id="test")  # as measured on a machine where the kernel is faster
    monkeypatch.setattr(kernel_wins, "measure", lambda candidates: {"dense": 2.0, "sparse": 1.0})
    monkeypatch.setattr(spike_input, "chooser", lambda: kernel_wins)
    train(TrainConfig(**cfg), tmp_path / "full")
    assert calls  # the rate-coded input went through the spike-input kernel

    class Stop(Exception):
        pass

    def stop(_stage, done, total):
        if done == total // 2 + 1:  # first batch of the second epoch
            raise Stop()
    with pytest.raises(Stop):
        train(TrainConfig(**cfg), tmp_path / "cut", progress=stop)
    train(TrainConfig(**cfg), tmp_path / "cut", resume=True)
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("full", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_path_can_be_fixed_for_reproducible_figures(monkeypatch):
    """SPIKEPORT_SPIKE_INPUT=dense always leaves the product to the GEMM, kernel takes the kernel without
    timing (a chooser that would pick dense is not asked), anything else is a one-line error."""
    from spikeport.errors import SpikeportError

    x = (torch.rand(64, 32, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    w = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    monkeypatch.setenv("SPIKEPORT_SPIKE_INPUT", "dense")
    assert spike_linear(x, w) is None
    monkeypatch.setenv("SPIKEPORT_SPIKE_INPUT", "kernel")
    got = spike_linear(x, w)
    assert got is not None and torch.allclose(got, x @ w.t(), atol=1e-5)
    monkeypatch.setenv("SPIKEPORT_SPIKE_INPUT", "fastest")
    with pytest.raises(SpikeportError, match="SPIKEPORT_SPIKE_INPUT='fastest'"):
        spike_linear(x, w)
