"""train.fused: the fused multi-step CUBA-LIF op against autograd through the step loop, and peers.

The reference is ``core.neuron.cuba_lif_step`` with the project's surrogate, differentiated by
autograd step by step (what ``LIFDense.forward`` does). Independent checks: a hand-computed
sequence, and SpikingJelly's / snnTorch's own LIF neurons where those packages are installed.
"""
from __future__ import annotations

import pytest
import torch

from spikeport.core import neuron
from spikeport.train import fused
from spikeport.train.fused import cuba_lif_multistep, reference_multistep

F64 = torch.float64


def _param(kind, N, gen, dtype, lo, hi):
    """A learnable surrogate parameter: None -> the float default, "scalar" / "per_neuron" -> tensor."""
    if kind == "scalar":
        return (torch.rand((), generator=gen, dtype=dtype) * (hi - lo) + lo).requires_grad_()
    if kind == "per_neuron":
        return (torch.rand(N, generator=gen, dtype=dtype) * (hi - lo) + lo).requires_grad_()
    return None


def _inputs(T, B, N, *, seed, bias, slope=None, scale=None, dtype=F64):
    """Random currents that keep 10-50 % of neurons firing; optional learnable bias, slope, scale;
    random dL/ds so that every step's spikes matter."""
    gen = torch.Generator().manual_seed(seed)
    cur = (torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.7 + 0.3).requires_grad_()
    b = (torch.randn(N, generator=gen, dtype=dtype) * 0.2).requires_grad_() if bias else 0.0
    params = {"slope": _param(slope, N, gen, dtype, 1.0, 9.0), "scale": _param(scale, N, gen, dtype, 0.3, 2.0)}
    weights = torch.randn(T, B, N, generator=gen, dtype=dtype)
    return cur, b, {k: v for k, v in params.items() if v is not None}, weights


def _run(fn, cur, b, params, weights, **kw):
    s = fn(cur, bias=b, **params, **kw)
    leaves = [x for x in (cur, b, *params.values()) if isinstance(x, torch.Tensor) and x.requires_grad]
    return s, torch.autograd.grad((s * weights).sum(), leaves)


CASES = [  # (beta_syn, beta_mem, theta, v_floor, floor_straight_through, bias, slope, scale)
    (0.0, 0.9, 1.0, False, False, False, None, None),              # LIF
    (0.0, 0.8, 0.7, False, False, True, None, None),
    (0.6, 0.9, 1.0, False, False, False, None, None),              # CUBA-LIF / iterative SRM
    (0.5, 0.85, 1.3, False, False, True, None, None),
    (0.0, 0.9, 1.0, True, False, True, "scalar", None),            # floor + learnable slope a
    (0.4, 0.9, 0.8, True, False, True, "per_neuron", None),
    (0.7, 0.95, 1.0, True, False, False, "scalar", None),
    (0.0, 0.9, 1.0, True, True, True, None, "scalar"),             # KLIF as methods.klif: scale k, ReLU s.t.
    (0.5, 0.9, 1.1, True, True, False, "scalar", "per_neuron"),    # both learnable
    (0.3, 0.8, 1.0, False, False, True, None, "scalar"),
]


@pytest.mark.parametrize("T", [10, 25])
@pytest.mark.parametrize("case", CASES)
def test_matches_autograd_through_step_loop(T, case):
    beta_syn, beta_mem, theta, v_floor, floor_st, bias, slope, scale = case
    cur, b, params, w = _inputs(T, 6, 40, seed=T + 7 * CASES.index(case), bias=bias, slope=slope, scale=scale)
    kw = dict(beta_syn=beta_syn, beta_mem=beta_mem, theta=theta, v_floor=v_floor, floor_straight_through=floor_st)
    s_ref, g_ref = _run(reference_multistep, cur, b, params, w, **kw)
    s_fused, g_fused = _run(cuba_lif_multistep, cur, b, params, w, **kw)
    assert torch.equal(s_fused, s_ref)
    assert 0.1 < s_ref.mean() < 0.6  # many spikes: the reset path is exercised
    assert len(g_fused) == len(g_ref) == 1 + bool(bias) + len(params)
    for got, want in zip(g_fused, g_ref):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_klif_method_layer_pieces():
    """Against KLIF as ``train.methods.klif`` writes it (KSpike, relu_straight_through) in the step loop."""
    klif = pytest.importorskip("spikeport.train.methods.klif")
    cur, b, params, w = _inputs(20, 6, 40, seed=21, bias=True, scale="scalar")
    k, theta, slope = params["scale"], 0.9, 7.0
    u = v = cur.new_zeros(cur.shape[1:])
    out = []
    for t in range(cur.shape[0]):
        s, u, v = neuron.cuba_lif_step(cur[t], u, v, beta_syn=0.4, beta_mem=0.9, theta=theta, bias=b,
                                       spike_fn=lambda z: klif.KSpike.apply(z / theta, k, slope),
                                       v_floor=klif.relu_straight_through)
        out.append(s)
    s_ref = torch.stack(out)
    leaves = [cur, b, k]
    g_ref = torch.autograd.grad((s_ref * w).sum(), leaves)
    s = cuba_lif_multistep(cur, 0.4, 0.9, theta, bias=b, slope=slope, scale=k, v_floor=True,
                           floor_straight_through=True)
    g = torch.autograd.grad((s * w).sum(), leaves)
    assert torch.equal(s, s_ref)
    for got, want in zip(g, g_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_float32_spikes_bit_identical_with_awkward_constants():
    """Rounding order matches the step loop: no spike flips in float32 with non-dyadic constants."""
    gen = torch.Generator().manual_seed(3)
    cur = torch.randn(25, 64, 128, generator=gen) * 0.3 + 0.11
    bias = torch.randn(128, generator=gen) * 0.03
    for beta_syn, v_floor in [(0.0, False), (0.37, False), (0.0, True), (0.61, True)]:
        kw = dict(beta_syn=beta_syn, beta_mem=0.93, theta=0.77, bias=bias, v_floor=v_floor)
        assert torch.equal(cuba_lif_multistep(cur, **kw), reference_multistep(cur, **kw))


def test_hand_computed_sequence():
    """LIF, one neuron, beta_mem 0.5, theta 1: v = 0.8, 1.2 -> spike, reset, 0.9, 1.45 -> spike."""
    cur = torch.tensor([0.8, 0.8, 0.9, 1.0], dtype=F64).view(4, 1, 1)
    s = cuba_lif_multistep(cur, beta_syn=0.0, beta_mem=0.5, theta=1.0)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    # CUBA, beta_syn 0.5, beta_mem 1: u = 0.5, 0.5, 0.25; v = 0.5, 1.0 (not > 1: no spike), 1.25 -> spike
    cur = torch.tensor([0.5, 0.25, 0.0], dtype=F64).view(3, 1, 1)
    s = cuba_lif_multistep(cur, beta_syn=0.5, beta_mem=1.0, theta=1.0)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]


def test_hand_computed_gradient_one_step():
    """T=1: s = H((x - theta)/theta); dL/dx = 1/(1 + k|z|)^2 / theta with z = (x - theta)/theta."""
    x = torch.tensor([[[1.5, 0.2]]], dtype=F64, requires_grad=True)
    cuba_lif_multistep(x, 0.0, 0.9, 2.0, slope=3.0).sum().backward()
    z = (torch.tensor([1.5, 0.2], dtype=F64) - 2.0) / 2.0
    torch.testing.assert_close(x.grad.flatten(), 1.0 / (1 + 3.0 * z.abs()) ** 2 / 2.0)


def test_only_requested_grads_and_other_shapes():
    """[T, B, C, H, W] input, bias that needs no grad, slope as a plain tensor."""
    cur = torch.randn(8, 3, 2, 4, 4, dtype=F64, requires_grad=True)
    bias = torch.full((2, 1, 1), 0.1, dtype=F64)
    slope = torch.tensor(6.0, dtype=F64)
    kw = dict(beta_syn=0.3, beta_mem=0.9, theta=0.5)
    s1, (g1,) = _run(cuba_lif_multistep, cur, bias, {"slope": slope}, torch.ones_like(cur), **kw)
    s2, (g2,) = _run(reference_multistep, cur, bias, {"slope": slope}, torch.ones_like(cur), **kw)
    assert torch.equal(s1, s2)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="theta"):
        cuba_lif_multistep(torch.zeros(3, 2, 2), 0.0, 0.9, 0.0)
    with pytest.raises(ValueError, match="T, B"):
        cuba_lif_multistep(torch.zeros(3), 0.0, 0.9, 1.0)


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_compile_flag_same_result_or_clean_fallback():
    """compile=True gives the eager result (compiled or, with a warning, the eager fallback)."""
    cur, b, params, w = _inputs(6, 4, 8, seed=11, bias=True, slope="scalar", scale="scalar", dtype=torch.float32)
    kw = dict(beta_syn=0.5, beta_mem=0.9, theta=1.0, v_floor=True)  # one config: each compiles anew (~20 s)
    s_e, g_e = _run(cuba_lif_multistep, cur, b, params, w, **kw)
    s_c, g_c = _run(cuba_lif_multistep, cur, b, params, w, compile=True, **kw)
    assert torch.equal(s_c, s_e)
    for got, want in zip(g_c, g_e):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_compile_failure_falls_back_to_eager_with_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("no compiler here")
    compiled = fused._Compiled.__new__(fused._Compiled)
    compiled.broken, compiled.forward, compiled.backward = False, broken, broken
    monkeypatch.setattr(fused, "_compiled", lambda: compiled)
    cur, b, params, w = _inputs(5, 3, 4, seed=12, bias=True)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        s_c, g_c = _run(cuba_lif_multistep, cur, b, params, w, beta_syn=0.2, beta_mem=0.9, theta=1.0, compile=True)
    s_e, g_e = _run(cuba_lif_multistep, cur, b, params, w, beta_syn=0.2, beta_mem=0.9, theta=1.0)
    assert compiled.broken and torch.equal(s_c, s_e)
    for got, want in zip(g_c, g_e):
        torch.testing.assert_close(got, want)


def test_spikingjelly_lif_same_spikes_and_gradients():
    """SpikingJelly's LIFNode (no input decay, hard reset to 0, reset not detached) with our
    surrogate is exactly our LIF (beta_syn 0, theta 1): spikes and BPTT gradients agree."""
    import spikingjelly.activation_based.functional as functional
    import spikingjelly.activation_based.neuron as sj

    from spikeport.train.surrogate import fast_sigmoid

    cur, _, _, w = _inputs(20, 5, 30, seed=5, bias=False)
    node = sj.LIFNode(tau=8.0, decay_input=False, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                      surrogate_function=fast_sigmoid(10.0), step_mode="m", backend="torch")
    functional.reset_net(node)
    s_sj = node(cur)
    (g_sj,) = torch.autograd.grad((s_sj * w).sum(), [cur])
    s, (g,) = _run(cuba_lif_multistep, cur, 0.0, {}, w, beta_syn=0.0, beta_mem=1 - 1 / 8.0, theta=1.0)
    assert torch.equal(s, s_sj.to(F64))
    torch.testing.assert_close(g, g_sj, rtol=1e-10, atol=1e-12)


def test_snntorch_leaky_same_spikes():
    """snnTorch's Leaky with reset to zero fires on the same steps (its reset is detached, so only
    the forward is compared)."""
    import snntorch as snn
    cur, _, _, _ = _inputs(25, 5, 30, seed=6, bias=False)
    lif = snn.Leaky(beta=torch.tensor(0.875, dtype=F64), threshold=1.0, reset_mechanism="zero")
    mem = lif.reset_mem()
    out = []
    with torch.no_grad():
        for t in range(cur.shape[0]):
            spk, mem = lif(cur[t], mem)
            out.append(spk)
    s = cuba_lif_multistep(cur.detach(), 0.0, 0.875, 1.0)
    assert torch.equal(s, torch.stack(out).to(F64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    cur, b, params, w = _inputs(15, 8, 64, seed=9, bias=True, slope="scalar", scale="per_neuron")
    kw = dict(beta_syn=0.5, beta_mem=0.9, theta=1.0, v_floor=True)
    s_cpu, g_cpu = _run(cuba_lif_multistep, cur, b, params, w, **kw)
    cur_d, b_d = (x.detach().cuda().requires_grad_() for x in (cur, b))
    params_d = {k: v.detach().cuda().requires_grad_() for k, v in params.items()}
    s_gpu, g_gpu = _run(cuba_lif_multistep, cur_d, b_d, params_d, w.cuda(), **kw)
    assert torch.equal(s_gpu.cpu(), s_cpu)
    for got, want in zip(g_gpu, g_cpu):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-10, atol=1e-12)


# --- the fused op inside the training layers: the same model trained either way ------------------------
WIRED = [("lif", "fc"), ("klif", "fc"), ("bpsrm", "fc"), ("hnsg", "fc"), ("spikeseq", "fc"), ("firate", "fc"),
         ("lif", "conv"), ("klif", "conv"), ("bpsrm", "conv")]


@pytest.mark.parametrize("qat", [False, True])
@pytest.mark.parametrize("method, arch", WIRED)
def test_layers_forward_fused_equals_step_loop(method, arch, qat, monkeypatch):
    """Every method's layers give the same spikes and gradients through the fused op (``use_fused``) as
    through the step loop of ``LIFDense.forward``; methods with their own surrogate (firate) keep the loop."""
    from spikeport.train.checkpoint import build_model
    from spikeport.train.config import TrainConfig
    from spikeport.train.model import LIFDense

    cfg = TrainConfig(method=method, arch=arch, hidden=[24], time_steps=6, channels=[3, 4], qat=qat,
                      bias=method not in ("hnsg", "bpsrm"), klif_k_init=0.7).validate()
    shape = (1, 8, 8)
    torch.manual_seed(3)
    model = build_model(cfg, 64, 5, input_shape=shape).double()
    with torch.no_grad():  # drive every layer hard enough that all of them fire
        for layer in model.layers:
            layer.weight.mul_(3.0)
            if hasattr(layer, "gamma"):  # bpsrm normalizes the current: its gain sets the drive
                layer.gamma.mul_(4.0)
    x = torch.rand(6, 7, *shape, dtype=F64)
    y = torch.randint(0, 5, (7,))

    def run(fused: bool):
        monkeypatch.setattr(LIFDense, "use_fused", fused)
        model.zero_grad()
        outs = model(x, qat=qat)
        sum((o * (i + 1.0) * torch.linspace(-1, 1, o.shape[-1], dtype=F64)).sum()
            for i, o in enumerate(outs)).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return [o.detach() for o in outs], grads

    calls = []
    real = fused.CubaLIFMultistep.apply
    monkeypatch.setattr(fused.CubaLIFMultistep, "apply", lambda *a: calls.append(1) or real(*a))
    outs_f, grads_f = run(True)
    assert len(calls) == (0 if method == "firate" else len(model.layers))
    outs_l, grads_l = run(False)
    assert len(calls) == (0 if method == "firate" else len(model.layers))
    for a, b in zip(outs_f, outs_l):
        assert torch.equal(a, b)
        assert a.any()
    assert grads_f.keys() == grads_l.keys() and grads_l
    for name in grads_l:
        torch.testing.assert_close(grads_f[name], grads_l[name], rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("method, arch", [("lif", "fc"), ("bpsrm", "fc"), ("klif", "conv"), ("lif", "rfc")])
def test_input_constant_over_time_is_projected_once(method, arch):
    """A direct-encoded batch as the training loop passes it (one frame expanded over time) gives the same
    spikes and gradients as the same values materialized for every step, with one first-layer GEMM."""
    from spikeport.train.checkpoint import build_model
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import float_input

    cfg = TrainConfig(method=method, arch=arch, hidden=[24], time_steps=6, channels=[3, 4], bias=method != "bpsrm").validate()
    shape = (1, 8, 8)
    torch.manual_seed(5)
    model = build_model(cfg, 64, 5, input_shape=shape).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)
    enc = (torch.rand(1, 7, *shape) * 255).round().to(torch.int16).expand(6, 7, *shape).contiguous().numpy()
    as_loop = float_input(enc, "direct")
    assert as_loop.stride(0) == 0 and torch.equal(as_loop, torch.from_numpy(enc) / 255.0)
    x_view = as_loop[:1].double().expand(as_loop.shape)
    x_full = x_view.contiguous()
    rows = []
    real = model.layers[0].project
    model.layers[0].project = lambda x, w: rows.append(x.shape[0]) or real(x, w)
    results = []
    for x in (x_view, x_full):
        model.zero_grad()
        outs = model(x, qat=True)
        sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=F64)).sum() for o in outs).backward()
        results.append(([o.detach() for o in outs], {n: p.grad.clone() for n, p in model.named_parameters()
                                                     if p.grad is not None}))
    per_forward = 2 if method == "bpsrm" else 1  # TCN projects once more for its batch statistics
    assert rows == [1] * per_forward + [6] * per_forward
    (outs_v, grads_v), (outs_f, grads_f) = results
    for a, b in zip(outs_v, outs_f):
        assert torch.equal(a, b) and a.any()
    for name in grads_f:
        torch.testing.assert_close(grads_v[name], grads_f[name], rtol=1e-9, atol=1e-12, msg=name)
