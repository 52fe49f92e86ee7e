"""Training sigma-delta networks (``spikeport train --neuron sigma-delta``): the moving input, the validation
split, the float delta encoder against a hand-computed case, the integer units, and a digits run that deploys
through netx: netx itself, Lava's own sdn processes and the emulator equal the checkpoint's integer forward,
payload for payload, in every layer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikeport.core import sd_quant
from spikeport.core.readout import predict
from spikeport.data import encode, load_dataset
from spikeport.data.encode import float_view, move_max, offsets
from spikeport.data.split import validation_split
from spikeport.errors import SpikeportError
from spikeport.files.schema import Invalid
from spikeport.train.config import TrainConfig
from spikeport.train.sigma_delta import hold
from tests.conftest import cli


def test_moving_frames_move_one_pixel_per_step_at_most():
    """Every frame is the image shifted by the walk's offset (zero filled), the walk moves <= 1 px per axis
    per step and stays within 1/8 of the image (1 px on 8 x 8 digits, 3 on 28 x 28); a sample's frames do not
    depend on the batch it is encoded in."""
    x = load_dataset("digits").x_test[:7]
    enc = encode(x, 12, "moving", seed=3)
    off = offsets(7, 12, np.random.default_rng(3), move_max(8, 8))
    assert enc.shape == (12, 7, 1, 8, 8) and enc.dtype == np.int16 and move_max(8, 8) == 1 and move_max(28, 28) == 3
    assert np.abs(np.diff(off, axis=0)).max() <= 1 and np.abs(off).max() == 1 and not off[0].any()
    q = encode(x, 1, "direct")[0]
    for t in (0, 5, 11):
        for i in range(7):
            dy, dx = off[t, i]
            want = np.zeros_like(q[i])
            for yy in range(8):
                for xx in range(8):  # pixel (y, x) shows the image at (y - dy, x - dx), or nothing
                    if 0 <= yy - dy < 8 and 0 <= xx - dx < 8:
                        want[:, yy, xx] = q[i][:, yy - dy, xx - dx]
            assert np.array_equal(enc[t, i], want)
    assert np.array_equal(encode(x[:3], 12, "moving", seed=3), enc[:, :3])



def test_lif_on_moving_frames_reads_pixels_as_direct_does():
    """A LIF net trained on moving frames reads a pixel as the direct encoder's 1/255 (as training's float_view
    does): with the same weights, its integer forward on the frames equals the direct-encoded net's, spike for
    spike (it read them 255x too large once: 76% QAT, 25% on Loihi integers)."""
    from spikeport.train.checkpoint import build_model

    x = load_dataset("digits").x_test[:16]
    frames = torch.from_numpy(encode(x, 6, "moving", seed=2).reshape(6, 16, -1).astype(np.int64))
    nets = {}
    for enc in ("direct", "moving"):
        torch.manual_seed(0)
        nets[enc] = build_model(TrainConfig(data="digits", encoder=enc, hidden=[32], time_steps=6), 64, 10)
    nets["moving"].load_state_dict(nets["direct"].state_dict())
    want, got = nets["direct"].forward_int(frames), nets["moving"].forward_int(frames)
    assert sum(int(o.sum()) for o in want) > 0
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    assert torch.equal((nets["moving"](torch.from_numpy(float_view(frames.numpy(), "moving")).float())[-1] > 0),
                       (nets["direct"](torch.from_numpy(float_view(frames.numpy(), "direct")).float())[-1] > 0))

def test_validation_split_is_stratified_and_never_the_test_set():
    ds = load_dataset("digits")
    val = validation_split(ds, 0.2, seed=1)
    assert len(val.x_train) + len(val.x_test) == len(ds.x_train)
    rows = {r.tobytes() for r in ds.x_train.reshape(len(ds.x_train), -1)}
    assert all(r.tobytes() in rows for r in val.x_test.reshape(len(val.x_test), -1))
    counts = np.bincount(val.y_test, minlength=10) / np.bincount(ds.y_train, minlength=10)
    assert np.allclose(counts, 0.2, atol=0.02)
    assert np.array_equal(validation_split(ds, 0.2, seed=1).y_test, val.y_test)



def test_validation_as_a_count_of_samples_and_bad_values_refused():
    """``validation`` takes a fraction or a whole number of samples (the membrane examples hold out 5000)."""
    ds = load_dataset("digits")
    val = validation_split(ds, 300, seed=1)
    assert abs(len(val.y_test) - 300) <= 10 and len(val.x_train) + len(val.x_test) == len(ds.x_train)
    assert TrainConfig(validation=5000).validation == 5000 and TrainConfig(validation=0.1).validation == 0.1
    for bad in (0.7, 2.5):
        with pytest.raises((Invalid, SpikeportError)):
            TrainConfig(validation=bad)


def test_lif_run_with_a_validation_split_trains_and_scores_that_split(tmp_path):
    """A LIF run with ``validation`` (the merge of the two split features once split twice and crashed):
    metrics.json scores the held-out split, never the test set, and says so."""
    proc = cli("train", "--data", "digits", "--limit", "400", "--epochs", "1", "--out", str(tmp_path / "r"),
               "--quiet", "--no-compile", timeout=300)
    assert proc.returncode == 0, proc.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\ndata = \"digits\"\nlimit = 400\nepochs = 1\nvalidation = 0.25\ncompile = false\n")
    proc = cli("train", "--config", str(cfg), "--out", str(tmp_path / "v"), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    met = json.loads((tmp_path / "v" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert met["scored_on"] == "validation split" and plain["scored_on"] == "test split"
    assert met["test_samples"] == met["validation"]["samples"] == 100 and met["train_samples"] == 300
    assert plain["test_samples"] == len(load_dataset("digits").y_test[:400])

def test_float_delta_encoder_by_hand():
    """Activations 10, 10, 12, 13, 9 with threshold 3: sent 10, 0, 0, 3 (the residue 2 plus 1), -4, so the
    receiver holds 10, 10, 10, 13, 9; floored to a unit of 4: 8, 8, 8, 8 (3 floors to 0), 4 (-4 -> -4);
    the gradient passes straight through."""
    leaf = torch.tensor([10.0, 10, 12, 13, 9], requires_grad=True)
    a = leaf.reshape(5, 1, 1)
    r, sent = hold(a, 3.0, count=True)
    assert r.flatten().tolist() == [10, 10, 10, 13, 9] and sent == 3
    r4, _ = hold(a, 3.0, unit=4.0)
    assert r4.flatten().tolist() == [8, 8, 8, 8, 4]
    r.sum().backward()
    assert leaf.grad.tolist() == [1.0] * 5


def test_units_and_range_by_hand():
    """A dense layer fed by inputs worth 0.5: weights up to 1.27 take scale 0.01 (127 levels), payloads are
    worth 0.01 * 0.5 * 64 (6 state bits dropped), biases and thresholds sit spike_exp (0) + 6 bits above the
    sum; when the calibrated sum reaches 2**28 floats, MARGIN 2 inside the 2**29 a 24-bit payload allows
    (<< 6) needs a scale of 2.0; 16-bit messages would allow 2**21; a conv wraps at 2**23."""
    w = np.array([[1.27, -0.5]])
    lq = sd_quant.quantize_layer(w, np.array([1.0]), threshold=0.64, in_unit=0.5, z_max=1.0, conv=False)
    assert lq.weight.tolist() == [[127, -50]] and lq.weight_scale == pytest.approx(0.01)
    assert lq.unit == pytest.approx(0.32) and lq.bias.tolist() == [3] and lq.vth == 2
    big = sd_quant.quantize_layer(w, None, threshold=0.0, in_unit=0.5, z_max=2.0**28, conv=False)
    assert big.weight_scale == pytest.approx(2.0) and big.weight.tolist() == [[1, 0]]
    assert sd_quant.sum_limit(conv=False, sigma=False, message_bits=16) == 2**21
    assert sd_quant.sum_limit(conv=True, sigma=False) == 2**23 and sd_quant.sum_limit(conv=False, sigma=True) == 2**23


def test_weight_bits_split_evenly_between_layers():
    """Two dense layers (max |w| 1), input unit u_0 = 1/255, MARGIN 2, sum limit 2**29. Layer 2's sums reach
    2**20 floats, so its sigma unit s_2 * u_1 = s_2 * 64 * s_1 * u_0 must be >= 2**21 / 2**29: the product
    s_1 * s_2 >= 2**-8 * 255 / 64, i.e. at most 6.0 weight bits for the two together. Greedy would give layer 1
    its 127 levels (7 bits) and layer 2 half a level; split evenly, each gets 3 bits."""
    s1, s2 = sd_quant.choose_scales([1.0, 1.0], [1.0, 2.0**20], [1, 1], [False, False], [False, False], 1 / 255)
    assert s1 * s2 == pytest.approx(2.0**-8 * 255 / 64, rel=0.05)  # the search steps bits by 1/8
    assert np.log2(1 / s1) == pytest.approx(3.0, abs=0.13) and np.log2(1 / s2) == pytest.approx(3.0, abs=0.13)


def test_last_value_readout():
    v = np.zeros((3, 2, 4), np.int32)
    v[-1, 0] = [1, 9, 9, -5]
    v[-1, 1] = [-7, -2, -3, -9]
    v[0, 1, 0] = 100  # earlier steps do not count
    assert predict(v, {"readout": "last_value"}).tolist() == [1, 1]


def test_sigma_delta_config_rules():
    with pytest.raises(Invalid, match="method"):
        TrainConfig(neuron="sigma-delta", method="klif")
    with pytest.raises(Invalid, match="encoder"):
        TrainConfig(neuron="sigma-delta", encoder="rate")
    assert TrainConfig(neuron="sigma-delta", arch="conv", encoder="moving").neuron == "sigma-delta"


SD_TOML = """[train]
neuron = "sigma-delta"
data = "digits"
arch = "conv"
channels = [8]
pool = 2
hidden = [32]
time_steps = 4
encoder = "moving"
epochs = 4
limit = 800
lr = 0.01
bias = true
sd_threshold = 0.02
sd_input_threshold = 0.02
sd_message_penalty = 0.01
"""


@pytest.fixture(scope="module")
def sd_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd")
    (folder / "sd.toml").write_text(SD_TOML)
    run = folder / "run"
    proc = cli("train", "--config", str(folder / "sd.toml"), "--out", str(run), "--quiet", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return run


def test_trained_sdnn_deploys_exactly_on_netx_lava_and_emulator(sd_run):
    """The Done criterion of the sigma-delta training: a digits SDNN (Delta input fed moving frames, conv with
    bias, pooled dense, Sigma output; thresholds everywhere) trained, exported as netx SDNN blocks and run
    by netx itself on Lava, by spikeport's Lava backend and by the emulator: every payload of every layer and
    the output's value at every step equal the checkpoint's integer forward."""
    metrics = json.loads((sd_run / "metrics.json").read_text())
    assert metrics["quantized_accuracy"] > 0.3  # learning, not chance (4 epochs on 800 moving digits)
    assert abs(metrics["qat_accuracy"] - metrics["quantized_accuracy"]) <= 0.02
    proc = cli("export", str(sd_run))
    assert proc.returncode == 2 and "no NIR node" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert cli("export", str(sd_run), "--netx").returncode == 0
    assert (sd_run / "model.net").is_file() and not (sd_run / "model.nir").exists()
    proc = cli("parity", str(sd_run), "--backend", "netx,lava,emulator", "--samples", "3", "--quiet", timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    res = json.loads((sd_run / "parity.json").read_text())
    assert res["spike_mismatches"] == 0 and res["payload_mismatches"] == 0 and res["value_mismatches"] == 0
    assert len(res["spike_pairs"]) == 4  # reference-netx, -lava, -emulator, netx-lava
    assert all(r["spikes_a"] > 0 for r in res["per_layer"]), res["per_layer"]  # every layer sends
    assert res["backend_accuracy"] is not None and res["output"].startswith("the sigma output's value at the last step")


def test_netx_file_reads_back_as_the_checkpoints_network(sd_run):
    """model.net read back (as netx builds it) is the checkpoint's LoihiNet: same kinds, integers, thresholds,
    biases and geometry; and the emulator gives the same payloads on both."""
    from spikeport.deploy import emulator
    from spikeport.nirfmt.runnet import load_run
    from spikeport.train import checkpoint

    if not (sd_run / "model.net").is_file():
        assert cli("export", str(sd_run), "--netx").returncode == 0
    model, cfg, _ = checkpoint.load(sd_run)
    want, got = model.loihi_net(cfg.time_steps), load_run(sd_run)
    assert [p.kind for p in got.populations] == ["delta", "sigma_delta", "sigma_delta", "sigma"]
    assert got.meta["readout"] == "last_value" and got.meta["dataset"] == "digits"
    for a, b in zip(want.populations, got.populations):
        assert a.size == b.size and a.sd.vth == b.sd.vth
        assert np.array_equal(np.broadcast_to(a.sd.bias, (a.size,)), np.broadcast_to(b.sd.bias, (b.size,)))
        if a.input is not None:
            assert np.array_equal(a.input.to_matrix().toarray(), b.input.to_matrix().toarray())
    x = encode(load_dataset("digits").x_test[:5], cfg.time_steps, "moving", seed=1)
    for p, q in zip(emulator.run(want, x).spikes, emulator.run(got, x).spikes):
        assert np.array_equal(p, q)


def test_nir_export_refuses_a_sigma_delta_run(sd_run):
    from spikeport.export.nir_export import export_run

    with pytest.raises(SpikeportError, match="no NIR node"):
        export_run(sd_run)
