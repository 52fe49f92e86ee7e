"""The five training methods and the baseline: each trains, exports to NIR and deploys with zero spike
mismatches; plus the pieces each method adds (KLIF's k and floor, TCN folding, sequence readout,
hidden-network masks, the discrete f-I curve)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spikeport.core.readout import predict
from spikeport.data import encode, load_dataset
from spikeport.deploy import emulator
from spikeport.nirfmt.load import load_nir
from spikeport.train import checkpoint, methods
from spikeport.train.config import METHODS, TrainConfig
from spikeport.train.methods import bpsrm, firate, hnsg, klif, spikeseq
from spikeport.train.model import LayerSpec

TINY = dict(data="digits", epochs=1, hidden=[24], time_steps=8, limit=240, batch_size=48)
TUNED = {"spikeseq": dict(seq_filter=0.75, surrogate_slope=3.0)}  # as examples/spikeseq_fmnist.toml


def tiny_cfg(method: str, **kw) -> TrainConfig:
    return TrainConfig(method=method, **{**TINY, **TUNED.get(method, {}), **kw}).validate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """One tiny trained and exported run per method (digits, 240 samples, one epoch)."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.loop import train

    out = {}
    for m in METHODS:
        run = tmp_path_factory.mktemp(f"run_{m}")
        metrics = train(tiny_cfg(m), run)
        export_run(run)
        out[m] = (run, metrics)
    return out


def _test_inputs(cfg: TrainConfig, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset(cfg.data, seed=cfg.seed, limit=cfg.limit)
    return encode(ds.x_test[:n], cfg.time_steps, cfg.encoder, seed=10_000), ds.y_test[:n]


def test_config_names_every_method():
    assert tuple(methods.METHODS) == METHODS
    with pytest.raises(Exception, match="keep_fraction"):
        TrainConfig(method="hnsg", keep_fraction=0.0).validate()
    with pytest.raises(Exception, match="hnsg_gain"):
        TrainConfig(method="hnsg", hnsg_gain=-1.0).validate()
    with pytest.raises(Exception, match="bias"):
        TrainConfig(method="bpsrm", bias=True).validate()


@pytest.mark.parametrize("method", METHODS)
def test_loss_falls(method):
    """A few Adam steps on one fixed digits batch lower the method's own loss."""
    torch.manual_seed(0)
    cfg = tiny_cfg(method, hidden=[32])
    ds = load_dataset("digits", seed=0)
    x = torch.from_numpy(encode(ds.x_train[:64], cfg.time_steps, "direct").astype(np.float32) / 255.0)
    y = torch.from_numpy(ds.y_train[:64].copy())
    model = checkpoint.build_model(cfg, 64, 10)
    meth = methods.get(method)
    frozen = [p.detach().clone() for p in model.parameters() if not p.requires_grad]
    opt = torch.optim.Adam(meth.trainable(model), lr=5e-3)
    losses = []
    for _ in range(25):
        loss = meth.loss(model(x, qat=True), y, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert all(torch.equal(a, b) for a, b in zip(frozen, [p for p in model.parameters() if not p.requires_grad]))


@pytest.mark.parametrize("method", METHODS)
def test_emulator_matches_integer_forward(runs, method):
    """NIR -> LoihiNet -> emulator equals the model's integer forward spike for spike, and the graph's
    readout metadata gives the accuracy training reported."""
    run, metrics = runs[method]
    model, cfg, _ = checkpoint.load(run)
    net = load_nir(run / "model.nir")
    x, y = _test_inputs(cfg, n=240)
    ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x.astype(np.int64)))]
    emu = emulator.run(net, x).spikes
    for layer, (a, b) in enumerate(zip(ref, emu)):
        assert a.shape == b.shape
        assert int((a != b).sum()) == 0, f"{method}: layer {layer} mismatches"
        assert a.sum() > 0, f"{method}: layer {layer} is silent"
    acc = float(np.mean(predict(emu[-1], net.meta) == y))
    assert acc == pytest.approx(metrics["quantized_accuracy"])
    assert abs(metrics["qat_accuracy"] - metrics["quantized_accuracy"]) <= 0.05
    assert len(metrics["firing_rates"]) == len(cfg.hidden) + 1 and metrics["fire_intensity"] > 0


def test_klif_floor_is_deployed_and_matters(runs):
    run, _ = runs["klif"]
    model, cfg, _ = checkpoint.load(run)
    net = load_nir(run / "model.nir")
    assert all(p.lif.floor_v for p in net.populations)
    x, _ = _test_inputs(cfg)
    without = dataclasses.replace(net, populations=[dataclasses.replace(p, lif=dataclasses.replace(p.lif, floor_v=False))
                                                    for p in net.populations])
    a, b = emulator.run(net, x).spikes, emulator.run(without, x).spikes
    assert any((sa != sb).any() for sa, sb in zip(a, b))  # the ReLU changes spikes of this net


def test_klif_k_changes_only_the_backward():
    torch.manual_seed(1)
    spec = LayerSpec(16, 8)
    layers = [klif.KLIFDense(spec, k_init=k) for k in (0.5, 3.0)]
    layers[1].weight.data.copy_(layers[0].weight.data)
    x = torch.rand(10, 4, 16)
    outs = [layer(x) for layer in layers]
    assert torch.equal(outs[0], outs[1]) and outs[0].sum() > 0
    grads = []
    for layer, out in zip(layers, outs):
        out.sum().backward()
        grads.append(layer.weight.grad.clone())
        assert layer.k.grad is not None and layer.k.grad != 0
    assert not torch.allclose(grads[0], grads[1])
    z = torch.linspace(-1, 1, 9, requires_grad=True)  # ds/dz = k / (1 + a |k z|)^2
    k = torch.tensor(2.0)
    klif.KSpike.apply(z, k, 10.0).sum().backward()
    assert torch.allclose(z.grad, 2.0 / (1 + 10 * (2 * z.detach()).abs()) ** 2)


def test_tcn_is_batch_norm_of_the_current_when_beta_syn_is_zero():
    """TCN's folded weight and voltage bias equal torch's batch_norm of the input current (beta_syn = 0)."""
    torch.manual_seed(2)
    layer = bpsrm.TCNDense(LayerSpec(12, 5, beta_syn=0.0))
    with torch.no_grad():
        layer.gamma.uniform_(0.5, 2.0)
        layer.beta.uniform_(-1.0, 1.0)
    x = torch.rand(6, 7, 12)
    w, b = layer.float_params(x)
    c = (x @ layer.weight.t()).reshape(-1, 5)
    ref = torch.nn.functional.batch_norm(c, None, None, layer.gamma, layer.beta, training=True, eps=bpsrm.EPS)
    assert torch.allclose((x @ w.t()).reshape(-1, 5) + b, ref, atol=1e-5)
    assert torch.allclose(layer.running_mean, c.mean(0))  # the first batch sets the running statistics
    layer.float_params(x + 1.0)
    c2 = (x + 1.0) @ layer.weight.t()
    assert torch.allclose(layer.running_mean, 0.9 * c.mean(0) + 0.1 * c2.reshape(-1, 5).mean(0), atol=1e-6)


def test_tcn_of_a_conv_layer_is_batch_norm_per_feature_map():
    """On a conv layer TCN normalizes each feature map over time, batch and positions: with beta_syn = 0
    the folded kernel and per-map bias equal torch's batch_norm of the conv current."""
    from spikeport.train import layers

    torch.manual_seed(4)
    geom = layers.Geometry((2, 6, 6), conv=True, out_channels=3, kernel=(3, 3), padding=(1, 1))
    layer = layers.with_mixins(bpsrm.TCNDense, layers.SpatialMixin)(LayerSpec(72, 108, beta_syn=0.0), geom=geom)
    assert layer.gamma.shape == layer.beta.shape == layer.running_var.shape == (3,)
    with torch.no_grad():
        layer.gamma.uniform_(0.5, 2.0)
        layer.beta.uniform_(-1.0, 1.0)
    x = torch.rand(4, 5, 72)
    w, b = layer.float_params(x)
    assert w.shape == (3, 2, 3, 3) and b.shape == (108,) and torch.equal(b.reshape(3, 36), b.reshape(3, 36)[:, :1].expand(3, 36))
    img = x.reshape(20, 2, 6, 6)
    c = torch.nn.functional.conv2d(img, layer.weight, padding=1)
    ref = torch.nn.functional.batch_norm(c, None, None, layer.gamma, layer.beta, training=True, eps=bpsrm.EPS)
    assert torch.allclose(torch.nn.functional.conv2d(img, w, padding=1).reshape(20, 108) + b, ref.reshape(20, 108), atol=1e-5)
    assert torch.allclose(layer.running_var, c.var(dim=(0, 2, 3), unbiased=False), atol=1e-6)
    layer.eval()
    w_eval, _ = layer.float_params(x)
    assert torch.allclose(w_eval, w)  # evaluation folds the running statistics (here: the one batch seen)
    sub = layers.with_mixins(bpsrm.TCNDense, layers.SpatialMixin)(LayerSpec(72, 108, beta_syn=0.0), geom=geom,
                                                                   stat_batch=2)
    sub.load_state_dict(layer.state_dict())
    sub.batches_seen.zero_()
    sub.float_params(x)  # statistics of the first 2 samples of the batch only
    c2 = torch.nn.functional.conv2d(x[:, :2].reshape(8, 2, 6, 6), layer.weight, padding=1)
    assert torch.allclose(sub.running_mean, c2.mean(dim=(0, 2, 3)), atol=1e-6)


def test_bpsrm_deploys_with_voltage_bias(runs):
    run, _ = runs["bpsrm"]
    net = load_nir(run / "model.nir")
    assert all(np.any(np.asarray(p.lif.bias_mant) != 0) for p in net.populations)
    assert all(p.lif.du < 4095 for p in net.populations)  # a real synaptic current (beta_syn > 0)


def test_hnsg_mask_survives_training_export_and_loading(runs):
    run, metrics = runs["hnsg"]
    model, cfg, _ = checkpoint.load(run)
    net = load_nir(run / "model.nir")
    for layer, pop, frac in zip(model.layers, net.populations, metrics["keep_fraction"]):
        mask = layer.mask().numpy()
        assert mask.sum() == hnsg.kept_count(cfg.keep_fraction, mask.size)
        assert frac == pytest.approx(mask.mean(), abs=1e-6)
        conn = pop.input
        assert conn.sparse and conn.lava_process == "sparse"
        assert np.array_equal(conn.weight != 0, mask)  # signed-constant weights: nonzero exactly where kept
        assert len(np.unique(np.abs(conn.weight[mask]))) == 1  # one magnitude (127, or coarser for netx)
        mat = conn.to_matrix()
        assert np.array_equal(mat.toarray() != 0, mask) and mat.nnz == mask.sum()
    untrained = checkpoint.build_model(cfg, 64, 10)
    assert not all(np.array_equal(a.mask().numpy(), b.mask().numpy()) for a, b in zip(untrained.layers, model.layers))


def _brute_nearest(out: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Nearest target by explicit loops (independent of measure.readout's vectorized code)."""
    T, B, N = out.shape
    pred = []
    for b in range(B):
        best, best_c = None, None
        for c in range(targets.shape[0]):
            d, fo, ft = 0.0, np.zeros(N), np.zeros(N)
            for t in range(T):
                fo = alpha * fo + out[t, b]
                ft = alpha * ft + targets[c, t]
                d += float(((fo - ft) ** 2).sum())
            if best is None or d < best - 1e-12:
                best, best_c = d, c
        pred.append(best_c)
    return np.array(pred)


def test_spike_sequence_readout_is_the_nearest_target():
    tg = spikeseq.target_trains(10, 12, period=2, onset=1)
    assert tg.shape == (10, 12, 10) and len({t.tobytes() for t in tg}) == 10
    meta = {"readout": "spike_sequence", "readout_targets": tg, "readout_filter": 0.5}
    assert np.array_equal(predict(tg.transpose(1, 0, 2), meta), np.arange(10))  # a target reads as its class
    assert predict(np.zeros((12, 3, 10), bool), meta).tolist() == [0, 0, 0]  # all equally far: lowest index
    rng = np.random.default_rng(3)
    for alpha in (0.5, 0.75):
        out = rng.random((12, 200, 10)) < 0.2
        out[:, :100] |= tg[rng.integers(0, 10, 100)].transpose(1, 0, 2) & (rng.random((12, 100, 10)) < 0.7)
        meta["readout_filter"] = alpha
        assert np.array_equal(predict(out, meta), _brute_nearest(out, tg, alpha))


def test_spikeseq_loss_is_zero_on_the_target_and_graph_carries_the_readout(runs):
    cfg = tiny_cfg("spikeseq")
    tg = torch.as_tensor(spikeseq.target_trains(10, cfg.time_steps, cfg.seq_period, cfg.seq_onset), dtype=torch.float32)
    y = torch.tensor([3, 7])
    hidden = torch.ones(cfg.time_steps, 2, 24)
    assert float(methods.get("spikeseq").loss([hidden, tg[y].transpose(0, 1)], y, cfg)) == 0.0
    net = load_nir(runs["spikeseq"][0] / "model.nir")
    assert str(net.meta["readout"]) in ("spike_sequence", "b'spike_sequence'")
    assert np.array_equal(np.asarray(net.meta["readout_targets"]).astype(bool), tg.numpy().astype(bool))


@pytest.mark.parametrize("method,arch", [("spikeseq", "conv"), ("firate", "rfc"), ("bpsrm", "conv")])
def test_method_on_other_architectures(tmp_path, method, arch):
    """Methods that change only the loss / readout or the surrogate run on conv and recurrent nets too,
    and bpsrm's TCN per feature map folds into the conv kernels and per-map voltage biases."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.loop import train

    train(tiny_cfg(method, arch=arch, limit=120), tmp_path)
    export_run(tmp_path)
    model, cfg, _ = checkpoint.load(tmp_path)
    x, _ = _test_inputs(cfg, n=40)
    ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x.astype(np.int64)))]
    emu = emulator.run(load_nir(tmp_path / "model.nir"), x).spikes
    assert [int((a != b).sum()) for a, b in zip(ref, emu)] == [0] * len(ref)
    assert ref[-1].sum() > 0


# --- firate: the discrete f-I curve ---------------------------------------------------------------
PARAMS = [(0.5, 0.9, 1.0), (0.0, 0.8, 0.7), (0.3, 1.0, 1.0)]  # (beta_syn, beta_mem, theta)


@pytest.mark.parametrize("beta_syn,beta_mem,theta", PARAMS)
def test_fi_staircase_equals_simulated_neuron(beta_syn, beta_mem, theta):
    cur = np.random.default_rng(4).uniform(0.0, 1.2 * theta, 300)
    sim = firate.simulated_rate(cur, beta_syn, beta_mem, theta, steps=1500)
    assert np.array_equal(sim, firate.staircase_rate(cur, beta_syn, beta_mem, theta))
    loihi = firate.simulated_rate(cur, beta_syn, beta_mem, theta, steps=1500, integer=True)
    assert np.mean(loihi == sim) > 0.9  # Loihi's rounding only moves the stair edges


@pytest.mark.parametrize("beta_syn,beta_mem,theta", PARAMS)
def test_fi_derivative_matches_finite_difference(beta_syn, beta_mem, theta):
    cur = torch.linspace(-0.2, 1.5, 200, dtype=torch.float64) * theta
    h = 1e-6
    for smooth in (0.05, 0.3):
        rate = lambda c: firate.smooth_rate(c, beta_syn, beta_mem, theta, smooth)  # noqa: E731
        fd = (rate(cur + h) - rate(cur - h)) / (2 * h)
        grad = firate.smooth_rate_grad(cur, beta_syn, beta_mem, theta, smooth)
        assert torch.allclose(grad, fd, rtol=1e-4, atol=1e-7)
        assert torch.all(grad >= 0) and torch.all((rate(cur) >= 0) & (rate(cur) <= 1))


def test_smooth_rate_meets_the_staircase_at_its_corners():
    beta_syn, beta_mem, theta = 0.5, 0.9, 1.0
    k = np.arange(1, 30)
    j = 1.0 / (1.0 - beta_mem ** k)  # L(j) = k: the left corner of the stair at rate 1/(k+1)
    corners = j * (1 - beta_syn) * (1 - beta_mem) * theta * (1 + 1e-12)
    smooth = firate.smooth_rate(torch.as_tensor(corners), beta_syn, beta_mem, theta, 1e-4).numpy()
    assert np.allclose(smooth, 1.0 / (k + 1), rtol=1e-3)
    cur = np.linspace(0.0, 1.0, 500)
    below = firate.smooth_rate(torch.as_tensor(cur), beta_syn, beta_mem, theta, 1e-4).numpy()
    assert np.all(below <= firate.staircase_rate(cur, beta_syn, beta_mem, theta) + 1e-3)


def test_firate_surrogate_is_the_f_i_derivative_at_the_current():
    layer = firate.FiRateDense(LayerSpec(3, 4), smooth=0.2)
    spike = layer.spike_function(1.0, 0.5, 0.9)
    z = torch.tensor([[-0.5, 0.2, -2.0, 0.0]], requires_grad=True)
    cur_t, u_prev = torch.tensor([[0.05, 0.1, 0.2, 0.0]]), torch.tensor([[0.1, 0.0, 0.3, -0.1]])
    s = spike(z, cur_t, u_prev)
    assert s.tolist() == [[0.0, 1.0, 0.0, 0.0]]
    s.sum().backward()
    want = firate.smooth_rate_grad(0.5 * (0.5 * u_prev + cur_t), 0.5, 0.9, 1.0, 0.2)
    assert torch.allclose(z.grad, want)


# --- Lava itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["klif", "hnsg"])
def test_lava_matches_integer_forward(runs, method):
    """KLIF's floored LIF and HNSG's Sparse connections on Lava fixed_pt, spike for spike."""
    from spikeport.deploy.supervise import run_lava

    run, _ = runs[method]
    model, cfg, _ = checkpoint.load(run)
    net = load_nir(run / "model.nir")
    x, _ = _test_inputs(cfg, n=30)  # the one-epoch hnsg output layer fires ~0.004 spikes per neuron and step
    ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x.astype(np.int64)))]
    lava = run_lava(net, x, timeout_s=300)
    assert len(lava) == len(ref)
    for a, b in zip(ref, lava):
        assert int((a != np.asarray(b, bool)).sum()) == 0
    assert all(a.sum() > 0 for a in ref)
    if method == "klif":  # these samples exercise the floor: without it the spikes differ
        pops = [dataclasses.replace(p, lif=dataclasses.replace(p.lif, floor_v=False)) for p in net.populations]
        plain = emulator.run(dataclasses.replace(net, populations=pops), x).spikes
        assert any((a != b).any() for a, b in zip(plain, lava))


# --- population ("voting") readout ------------------------------------------------------------------
def test_population_readout_hand_computed():
    s = np.zeros((4, 2, 6), bool)  # 3 classes x 2 neurons
    s[:, 0, 0] = True          # sample 0: class 0 neuron a fires 4
    s[:3, 0, 4] = s[:2, 0, 5] = True  # class 2: 3 + 2 = 5 > 4 (one neuron alone would lose)
    s[:2, 1, 2] = s[:2, 1, 3] = True  # sample 1: class 1 = 4 ties nothing else
    s[:4, 1, 1] = True         # class 0 = 4: a tie, to the lowest index
    assert predict(s, {"readout": "spike_count", "readout_population": 2}).tolist() == [2, 0]
    assert predict(s, {"readout": "spike_count"}).tolist() == [0, 1]
    for bad in (4, 0, 2.0, True):
        with pytest.raises(ValueError, match="readout_population"):
            predict(s, {"readout": "spike_count", "readout_population": bad})
    with pytest.raises(Exception, match="population"):
        TrainConfig(method="spikeseq", population=2).validate()


def test_population_trains_exports_and_deploys(tmp_path):
    """population=3: 30 output neurons, the loss and every backend read classes from groups of 3."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.loop import train

    metrics = train(tiny_cfg("lif", population=3), tmp_path)
    export_run(tmp_path)
    model, cfg, _ = checkpoint.load(tmp_path)
    net = load_nir(tmp_path / "model.nir")
    assert net.n_outputs == 30 and int(np.asarray(net.meta["readout_population"])) == 3
    x, y = _test_inputs(cfg, n=240)
    emu = emulator.run(net, x).spikes[-1]
    ref = model.forward_int(torch.from_numpy(x.astype(np.int64)))[-1]
    assert np.array_equal(ref.numpy(), emu) and emu.sum() > 0
    by_hand = emu.sum(0).reshape(len(y), 10, 3).sum(2).argmax(1)
    assert np.array_equal(predict(emu, net.meta), by_hand)
    assert float(np.mean(by_hand == y)) == pytest.approx(metrics["quantized_accuracy"])


def test_klif_k_learning_rate(runs, tmp_path):
    """klif_k_lr = 0 keeps k at its initial value (an ablation: LIF + ReLU floor); the default learns it."""
    from spikeport.train.loop import train

    frozen = train(tiny_cfg("klif", klif_k_init=0.8, klif_k_lr=0.0), tmp_path)
    assert frozen["klif_k"] == [0.8, 0.8]
    assert any(k != 1.0 for k in runs["klif"][1]["klif_k"])
    with pytest.raises(Exception, match="klif_k_lr"):
        TrainConfig(method="klif", klif_k_lr=-1.0).validate()


def test_klif_floor_hidden_leaves_the_output_layer_plain(tmp_path):
    """klif_floor = "hidden": the floor on the hidden layer only, through training, export and loading;
    the deployed net still equals the integer forward spike for spike."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.loop import train

    train(tiny_cfg("klif", klif_floor="hidden"), tmp_path)
    export_run(tmp_path)
    model, cfg, _ = checkpoint.load(tmp_path)
    assert cfg.klif_floor == "hidden" and [bool(layer.v_floor) for layer in model.layers] == [True, False]
    net = load_nir(tmp_path / "model.nir")
    assert [p.lif.floor_v for p in net.populations] == [True, False]
    x, _ = _test_inputs(cfg)
    ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x.astype(np.int64)))]
    for a, b in zip(ref, emulator.run(net, x).spikes):
        assert int((a != b).sum()) == 0 and a.sum() > 0
    with pytest.raises(Exception, match="klif_floor"):
        TrainConfig(method="klif", klif_floor="output").validate()


def test_example_configs_are_valid():
    """Every config docs/results.md names loads and validates (a stale field would break its row)."""
    from pathlib import Path

    files = sorted(Path(__file__).parents[1].glob("examples/*.toml"))
    assert len(files) >= 8
    methods_seen = {TrainConfig.from_toml(f).method for f in files}
    assert methods_seen == set(METHODS)


def test_hnsg_gain_sets_the_frozen_weight_magnitude():
    """sigma = hnsg_gain / sqrt(keep_fraction * fan_in), every weight +-sigma, as the docstring states."""
    from spikeport.train import checkpoint

    for gain, keep in ((0.4, 0.5), (0.25, 0.3)):
        cfg = TrainConfig(method="hnsg", hidden=[20], keep_fraction=keep, hnsg_gain=gain)
        model = checkpoint.build_model(cfg, 64, 10)
        for layer in model.layers:
            sigma = gain / np.sqrt(keep * layer.spec.n_in)
            np.testing.assert_allclose(layer.weight.detach().abs().numpy(), sigma, rtol=1e-6)


def test_klif_export_says_peers_run_it_without_the_floor(runs, tmp_path):
    """NIR's CubaLIF cannot express KLIF's floor: export warns, the graph and each floored node carry a
    note, and parity.json (hence the report) repeats it; a plain lif graph carries none."""
    import nir

    from spikeport.export.nir_export import export_run
    from spikeport.pipeline.parity_stage import graph_notes

    run, _ = runs["klif"]
    with pytest.warns(UserWarning, match="KLIF floor"):
        path = export_run(run, tmp_path / "klif.nir")
    graph = nir.read(str(path))
    assert "other NIR tools run this layer without the floor" in str(graph.metadata["spikeport"]["floor_v_warning"])
    floored = [n for n, node in graph.nodes.items() if type(node).__name__ == "CubaLIF"
               and bool(np.asarray(node.metadata["loihi"]["floor_v"]))]
    assert floored and all("floor_v_note" in graph.nodes[n].metadata["loihi"] for n in floored)
    assert graph_notes(load_nir(path)) and not graph_notes(load_nir(runs["lif"][0] / "model.nir"))
