"""Loihi 2's own networks in: every block lava-dl's netx builds, read from files slayer itself wrote, equal
to netx itself on Lava (and spikeport's Lava backend, and the emulator) in every layer: spikes, graded
payloads and regression values."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from spikeport.core import sigma_delta
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.sigma_delta import SigmaDeltaParams
from spikeport.deploy import emulator, kernels
from spikeport.errors import SpikeportError
from spikeport.importer.netx_import import import_netx
from spikeport.nirfmt import netx_net
from spikeport.nirfmt.runnet import load_run
from tests import slayer_nets

T = 8


def test_delta_by_hand():
    """A delta neuron (spike and state exponents 0, vth 3) on frames 10, 10, 12, 13, 9: it sends the change
    once it reaches the threshold (">=", the residue kept): 10, 0, 0, 3, -4."""
    p = SigmaDeltaParams("delta", vth=3, spike_exp=0, state_exp=0)
    state = tuple(np.zeros(1, np.int64) for _ in range(3))
    got = []
    for x in (10, 10, 12, 13, 9):
        s, state = sigma_delta.step(np.array([x]), state, p)
        got.append(int(s[0]))
    assert got == [10, 0, 0, 3, -4]
    a = np.array([10, 10, 12, 13, 9]).reshape(5, 1, 1)
    assert kernels.run_sd_block(a, tuple(np.zeros((1, 1), np.int64) for _ in range(3)), p).ravel().tolist() == got


def _sd_net(rng) -> LoihiNet:
    """delta (4) -> dense -> sigma_delta ReLU with biases (6) -> dense -> sigma (3): a graded chain with shifts."""
    enc = Population("in", 4, None, None, sd=SigmaDeltaParams("delta", vth=2, spike_exp=3, state_exp=2),
                     encoder="a_in", message_bits=16)
    hid = Population("hid", 6, None, Connection("w1", rng.integers(-100, 100, (6, 4)).astype(np.int8), -2),
                     sd=SigmaDeltaParams("sigma_delta", vth=5, bias=rng.integers(-40, 40, 6), spike_exp=3, state_exp=2),
                     message_bits=16)
    out = Population("out", 3, None, Connection("w2", rng.integers(-100, 100, (3, 6)).astype(np.int8), 1),
                     sd=SigmaDeltaParams("sigma"), message_bits=16)
    return LoihiNet((4,), [enc, hid, out], 10, graded_input=True)


def test_sigma_delta_chain_and_int32_wrap_equal_lava():
    """The emulator equals Lava's own sdn processes (payloads and sigma values every step), including a
    graded dense sum beyond 2**31, which Lava's int32 ``dot`` wraps."""
    from spikeport.deploy.supervise import run_lava

    rng = np.random.default_rng(3)
    net = _sd_net(rng)
    x = rng.integers(-300, 300, (10, 5, 4))
    x[:, 4] = 1 << 17  # delta payloads of 2**17 * 2**3 into weights up to 2*99: the hidden sums wrap
    emu = emulator.run(net, x)
    big = np.abs(x[:, 4:5].astype(np.int64) << 3).sum() * 99
    assert big >= 2**31
    lava, values = run_lava(net, x, timeout_s=300, with_values=True)
    for a, b in zip(emu.spikes, lava):
        assert a.dtype == np.int32 and np.array_equal(a, b)
    assert np.array_equal(emu.values, values) and np.abs(emu.spikes[1]).max() > 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slayer")
    shapes = {"cnn": slayer_nets.cuba_encoder_cnn(folder / "cnn.net"),
              "sdnn": slayer_nets.sdnn_pilotnet(folder / "sdnn.net"),
              "delays": slayer_nets.cuba_delays_recurrent(folder / "delays.net")}
    return folder, shapes


def _parity(run, backend: str) -> dict:
    from spikeport.pipeline.parity_stage import parity

    return parity(run, backend=backend, timeout_s=600)


def test_sdnn_pilotnet_equals_netx(files, tmp_path):
    """PilotNet-shaped SDNN (Delta input, strided Conv, Flatten, Dense, Sigma output) on moving frames: every
    payload of every layer and the Sigma output's value at every step equal netx on Lava."""
    folder, shapes = files
    np.save(tmp_path / "x.npy", slayer_nets.moving(shapes["sdnn"], 6, T, seed=1))
    info = import_netx(folder / "sdnn.net", tmp_path / "run", inputs=tmp_path / "x.npy")
    assert info["regression"] and info["model_nir"] is None and info["inputs"] == "steps"
    net = load_run(tmp_path / "run")
    assert [p.kind for p in net.populations] == ["delta", "sigma_delta", "sigma_delta", "sigma_delta", "sigma"]
    res = _parity(tmp_path / "run", "netx,emulator,lava")
    assert res["spike_mismatches"] == 0 and res["value_mismatches"] == 0 and res["payload_mismatches"] == 0
    assert all(r["spikes_a"] > 0 for r in res["per_layer"])
    assert res["output_values"]["reference-emulator"]["fraction_equal"] == 1.0
    assert res["backend_accuracy"] is None  # values, not classes
    with np.load(tmp_path / "run" / "parity_outputs.npz") as out:
        assert out["emulator"].shape == (6, T, 2) and np.array_equal(out["emulator"], out["reference"])
    x = np.swapaxes(np.load(tmp_path / "x.npy"), 0, 1)
    assert np.abs(emulator.run(net, x).spikes[1]).max() > 1  # graded payloads, not spikes


def test_delays_recurrence_graded_spikes_and_integrator_equal_netx(files, tmp_path):
    """Graded LIF spikes (messageBits), a recurrent block with axonal delays (netx gives its synapses no
    weight exponent), a delayed dense block and netx's default non-leaky integrator (no neuron group):
    spikes of every layer and the integrator's voltage at every step equal netx on Lava."""
    folder, shapes = files
    x = (np.random.default_rng(2).random((6, T, *shapes["delays"])) < 0.3).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    info = import_netx(folder / "delays.net", tmp_path / "run", inputs=tmp_path / "x.npy")
    assert info["layers"][0]["message_bits"] == 4 and info["layers"][1]["delays"] == 3
    assert info["layers"][3]["du"] == -1 and info["layers"][3]["dv"] == 4096 and not info["layers"][3]["spiking"]
    assert any("gradedSpike" in note for note in info["ignored_by_netx"])
    res = _parity(tmp_path / "run", "netx,emulator,lava")
    assert res["spike_mismatches"] == 0 and res["value_mismatches"] == 0
    assert all(r["spikes_a"] > 0 for r in res["per_layer"][:3])
    net = load_run(tmp_path / "run")
    values = emulator.run(net, np.swapaxes(x, 0, 1)).values
    assert np.count_nonzero(values) > 0.5 * values.size  # a voltage read every step


def test_bias_encoded_cnn_through_the_cli(files, tmp_path):
    """`spikeport import model.net --inputs frames.npy --time-steps 12` on a bias-encoded CNN, then
    `spikeport parity RUN --backend netx,emulator`: exit 0, 0 mismatches."""
    folder, shapes = files
    np.save(tmp_path / "frames.npy", slayer_nets.frames(shapes["cnn"], 5, 0, 40))
    np.save(tmp_path / "labels.npy", np.arange(5) % 3)
    cli = [sys.executable, "-m", "spikeport.cli"]
    run = tmp_path / "run"
    imp = subprocess.run(cli + ["import", str(folder / "cnn.net"), "--inputs", str(tmp_path / "frames.npy"),
                                "--labels", str(tmp_path / "labels.npy"), "--time-steps", "12", "--out", str(run), "-q"],
                         capture_output=True, text=True, timeout=300)
    assert imp.returncode == 0, imp.stderr
    par = subprocess.run(cli + ["parity", str(run), "--backend", "netx,emulator", "-q"], capture_output=True, text=True,
                         timeout=600)
    assert par.returncode == 0, par.stderr
    res = json.loads((run / "parity.json").read_text())
    assert res["spike_mismatches"] == 0 and res["backend_accuracy"] is not None
    assert all(r["spikes_a"] > 0 for r in res["per_layer"])
    info = json.loads((run / "netx_import.json").read_text())
    assert info["encoder"] == "bias" and info["inputs"] == "frames" and info["transform"] == {"weight": 128, "bias": 32}


def _edit(path, key: str, value=None) -> None:
    with h5py.File(path, "a") as fh:
        if key in fh:
            del fh[key]
        if value is not None:
            fh.create_dataset(key, data=value)


@pytest.mark.parametrize("name,key,value,match", [
    ("cnn", "layer/1/type", np.array([b"pool"], "S10"), "'pool'.*NotImplementedError"),
    ("cnn", "layer/1/type", np.array([b"foo"], "S10"), "netx skips it silently"),
    ("delays", "layer/0/type", np.array([b"dense_comp"], "S10"), "create_complex_dense"),
    ("delays", "layer/2/neuron/type", np.array([b"RF_PHASE"], "S10"), "resonate-and-fire"),
    ("delays", "layer/2/neuron/type", np.array([b"ALIF"], "S10"), "neuron type 'ALIF'"),
    ("delays", "layer/2/delay", -np.ones(8), "non-negative"),
    ("delays", "layer/2/delay", np.ones((3, 3)), "delays of shape"),
    ("sdnn", "layer/5/bias", np.ones(2), "sigma output with a bias"),
    ("sdnn", "layer/1/neuron", None, "conv block without neuron"),
    ("delays", "layer/0/neuron/messageBits", 40, "messageBits"),
])
def test_what_netx_cannot_build_is_refused_by_block(files, tmp_path, name, key, value, match):
    import shutil

    folder, _ = files
    path = tmp_path / "m.net"
    shutil.copyfile(folder / f"{name}.net", path)
    _edit(path, key, value)
    with pytest.raises(SpikeportError, match=match) as err:
        import_netx(path, tmp_path / "run", time_steps=4)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_recurrent_delays_need_square_weights(files, tmp_path):
    import shutil

    folder, _ = files
    path = tmp_path / "m.net"
    shutil.copyfile(folder / "delays.net", path)
    with h5py.File(path, "a") as fh:  # 12 -> 12 recurrent block fed by 16 inputs: netx's delay matrix misfits
        w = fh["layer/1/weight"][()]
        del fh["layer/1/weight"]
        fh["layer/1"].create_dataset("weight", data=np.hstack([w, w[:, :4]]))
        w0 = fh["layer/0/weight"][()]
        del fh["layer/0/weight"]
        fh["layer/0"].create_dataset("weight", data=np.vstack([w0, w0[:4]]))
        del fh["layer/0/shape"]
        fh["layer/0"].create_dataset("shape", data=np.array([16]))
    with pytest.raises(SpikeportError, match="more inputs than neurons"):
        import_netx(path, tmp_path / "run", time_steps=4)


def test_bad_inputs_for_encoders_are_one_line(files, tmp_path):
    folder, shapes = files
    np.save(tmp_path / "big.npy", np.full((2, *shapes["cnn"]), 5000))
    with pytest.raises(SpikeportError, match="13-bit bias mantissa"):
        import_netx(folder / "cnn.net", tmp_path / "r1", inputs=tmp_path / "big.npy", time_steps=4)
    np.save(tmp_path / "moving.npy", slayer_nets.moving(shapes["cnn"], 2, 3))
    with pytest.raises(SpikeportError, match="driven by its bias"):
        import_netx(folder / "cnn.net", tmp_path / "r2", inputs=tmp_path / "moving.npy")
    np.save(tmp_path / "frames.npy", slayer_nets.frames(shapes["cnn"], 2, 0, 9))
    with pytest.raises(SpikeportError, match="--time-steps"):
        import_netx(folder / "cnn.net", tmp_path / "r3", inputs=tmp_path / "frames.npy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 3, 3)))
    with pytest.raises(SpikeportError, match="neither frames"):
        import_netx(folder / "cnn.net", tmp_path / "r4", inputs=tmp_path / "shape.npy", time_steps=4)


def test_sdnn_messages_are_counted_as_sent(files, tmp_path):
    """Energy counts what a sigma-delta network sends: a zero delta costs nothing; each nonzero payload
    reaches its fan-out (effective MACs, graded), hand-counted from the emulator's payloads."""
    from spikeport.pipeline.energy_stage import energy

    folder, shapes = files
    x = slayer_nets.moving(shapes["sdnn"], 3, T, seed=4)
    np.save(tmp_path / "x.npy", x)
    import_netx(folder / "sdnn.net", tmp_path / "run", inputs=tmp_path / "x.npy")
    res = energy(tmp_path / "run", samples=None)
    net = load_run(tmp_path / "run")
    out = emulator.run(net, np.swapaxes(x, 0, 1)).spikes
    hand = 0
    for pop, src in zip(net.populations[1:], out[:-1]):
        fan_out = np.diff(pop.input.to_matrix().tocsc().indptr)  # nonzero weights per input
        hand += float((np.asarray(src != 0).reshape(T * 3, -1) * fan_out).sum()) / 3
    assert res["effective_macs"] == pytest.approx(hand) and res["synops"] == 0
    assert res["loihi2_mapping"]["layers"][0]["kind"] == "delta"
    assert "Loihi 2 only" in res["loihi_mapping"]["note"]
