"""16-bit weights as two Loihi synapses per weight (``spikeport import --weight-bits 16``).

Independent references: a hand-computed spike train (one always-on input, no leak: neuron i spikes when
t * W_i > vth), Lava itself (the two Dense processes, high byte at exponent 8 and unsigned low byte at 0,
must sum to exactly W), snnTorch's own network (the float reference equals it; 16-bit integers must agree
with it at least as well as 8-bit ones) and the NIR file as nir reads it.
"""
import json

import nir
import numpy as np
import pytest
import torch

from spikeport.core import loihi
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import emulator
from spikeport.deploy.supervise import run_lava
from spikeport.errors import SpikeportError
from spikeport.importer.finetune import finetune_run
from spikeport.importer.run import import_graph
from spikeport.measure import OpLayer, count_ops, map_to_loihi, map_to_loihi2
from spikeport.nirfmt.load import load_nir, to_loihi_net
from spikeport.nirfmt.spec import NODE_META, WEIGHT_BITS
from tests.test_finetune import check_finetuned_parity
from tests.test_import_semantics import N_IN, BrailleNet

T = 12
VTH = 1150
# neuron i: one always-on input of wide weight W_i, du = 4095 (u = 64 a), dv = 0 (no leak): v after t steps
# is 64 t W_i; it spikes (v > 64 vth, then v = 0) every k steps, k the least with k W_i > 1150:
# W = 300 (hi 1, lo 44): k = 4 -> steps 3, 7, 11; W = 256 (hi 1, lo 0, the high byte alone): k = 5 ->
# steps 4, 9; W = 44 (the low byte alone): k = 27 -> none in 12 steps; W = -300: never.
HAND = {300: [3, 7, 11], 256: [4, 9], 44: [], -300: []}


def test_split_wide_extremes():
    w = np.array([loihi.WIDE_MIN, -300, -1, 0, 1, 255, 256, 300, loihi.WIDE_MAX])
    hi, lo = loihi.split_wide(w)
    assert np.array_equal((hi << 8) + lo, w)
    assert hi.min() >= loihi.WEIGHT_MIN and hi.max() <= loihi.WEIGHT_MAX and lo.min() >= 0 and lo.max() <= 255
    assert (loihi.WIDE_MIN, loihi.WIDE_MAX) == (-32512, 32767)
    with pytest.raises(ValueError):
        loihi.split_wide(np.array([loihi.WIDE_MIN - 1]))
    with pytest.raises(ValueError, match="wide weights are dense with weight_exp 0"):
        Connection("w", np.ones((2, 2), np.int16), 1, wide=True)


def test_wide_weights_hand_computed_on_lava_and_emulator():
    weights = np.array(list(HAND), np.int16).reshape(-1, 1)
    pop = Population("p", len(HAND), loihi.LIFParams(du=4095, dv=0, vth=VTH), Connection("w", weights, 0, wide=True))
    net = LoihiNet((1,), [pop], T, False)
    x = np.ones((T, 1, 1), np.int64)
    want = [HAND[int(w)] for w in weights[:, 0]]
    emu = emulator.run(net, x).spikes[0][:, 0]
    lava = run_lava(net, x)[0][:, 0]
    assert [list(np.flatnonzero(emu[:, i])) for i in range(len(HAND))] == want
    assert [list(np.flatnonzero(lava[:, i])) for i in range(len(HAND))] == want


@pytest.fixture(scope="module")
def braille(tmp_path_factory):
    """The braille model_build net (random weights, biases: lines) imported exactly with 8- and 16-bit weights."""
    from snntorch.export_nir import export_to_nir

    tmp = tmp_path_factory.mktemp("wide")
    path = tmp / "braille.nir"
    nir.write(str(path), export_to_nir(BrailleNet(), torch.zeros(1, N_IN), ignore_dims=[0]))
    x = (np.random.default_rng(3).random((48, 32, N_IN)) < 0.15).astype(np.float32)  # [N, T, 12]
    np.save(tmp / "x.npy", x)
    info = {bits: import_graph(path, dt=1e-4, out=tmp / f"run{bits}", producer="snntorch", reset="zero",
                               reset_timing="same-step", inputs=tmp / "x.npy", weight_bits=bits) for bits in (8, 16)}
    return tmp, x, info


def test_import_16_bit_is_exact_and_finer(braille):
    """Dense, recurrent and line weights become 16-bit: model.nir holds int16 with weight_bits 16, the
    deployed net is wide everywhere, the import stays exact, weight and line errors shrink at least 10-fold and the
    integers agree with snnTorch at least as well as the 8-bit import."""
    tmp, x, info = braille
    i8, i16 = info[8], info[16]
    assert i16["exact"] and i16["weight_bits"] == {"option": 16, "synapses_per_weight": [2, 2]}
    for l8, l16 in zip(i8["layers"], i16["layers"]):
        assert l16["weight_bits"] == 16 and l16["weight_exp"] == 0
        assert l16["weight_rel_error"] * 10 < l8["weight_rel_error"]
        assert l16["bias_line"]["rel_error"] * 10 < l8["bias_line"]["rel_error"]
    assert i16["agreement"]["prediction_agreement"] >= i8["agreement"]["prediction_agreement"]
    assert np.mean(i16["agreement"]["spike_agreement"]) > np.mean(i8["agreement"]["spike_agreement"])
    g = nir.read(str(tmp / "run16" / "model.nir"))
    for name in ("fc0", "rec0", "fc1"):
        meta = g.nodes[name].metadata[NODE_META]
        assert int(meta[WEIGHT_BITS]) == 16 and np.abs(meta["weight"]).max() > loihi.WEIGHT_MAX, name
    net = load_nir(tmp / "run16" / "model.nir")
    conns = [c for p in net.populations for c in (p.input, p.recurrent, p.bias_line) if c is not None]
    assert len(conns) == 5 and all(c.wide for c in conns)
    x_int = np.rint(np.swapaxes(x, 0, 1)).astype(np.int64)
    spikes = emulator.run(net, x_int[:, :12]).spikes
    lava = run_lava(net, x_int[:, :12])
    assert [int((a != b).sum()) for a, b in zip(spikes, lava)] == [0, 0]
    assert any(s.any() for s in spikes)


def test_wide_finetune_stays_wide_and_exact(braille, tmp_path):
    """Fine-tuning a 16-bit import keeps every layer 16-bit (QAT on the 16-bit grid) and deploys it: the
    module starts as the import, and Lava == emulator == the checkpoint's integer forward."""
    import shutil

    src, _, _ = braille
    run = tmp_path / "run"
    shutil.copytree(src / "run16", run)
    res = finetune_run(run, epochs=1, target="producer", holdout=0.25, keep="last")
    assert res["integer_forward_vs_emulator_mismatches"] == 0
    cfg = json.loads((run / "config.json").read_text())
    assert [(a["weight_bits"], a["weight_exp"]) for a in cfg["layers"]] == [(16, 0), (16, 0)]
    net = load_nir(run / "model.nir")
    assert all(c.wide for p in net.populations for c in (p.input, p.recurrent, p.bias_line) if c is not None)
    check_finetuned_parity(run, samples=12)


def _tampered(run, key, value):
    g = nir.read(str(run / "model.nir"))
    g.nodes["fc0"].metadata[NODE_META][key] = value
    return g


@pytest.mark.parametrize("key, value, words", [(WEIGHT_BITS, np.int64(12), "'weight_bits' must be 8 or 16"),
                                               ("weight_exp", np.int64(1), "weight_exp 1 is outside [0, 0]"),
                                               (WEIGHT_BITS, np.int64(8), "do not fit Loihi's 8 bits")])
def test_wide_metadata_is_checked(braille, key, value, words):
    tmp, _, _ = braille
    with pytest.raises(SpikeportError, match=words.replace("[", r"\[").replace("]", r"\]")) as err:
        to_loihi_net(_tampered(tmp / "run16", key, value), "m.nir")
    assert "\n" not in str(err.value) and "'fc0'" in str(err.value)


def test_netx_refuses_wide_weights(braille, tmp_path):
    from spikeport.export.netx_export import export_netx

    tmp, _, _ = braille
    with pytest.raises(SpikeportError, match="16-bit weights"):
        export_netx(tmp / "run16" / "model.nir", tmp_path / "m.net")
    assert not (tmp_path / "m.net").exists()


def test_wide_weights_cost_two_synaptic_operations():
    """Hand count: one always-on input, 2 nonzero weights, 12 steps: 24 SynOps per sample at 8 bits, 48 as
    16-bit weights (two synapses each); the ANN-equivalent MACs count each weight once."""
    x = np.ones((T, 1, 1), np.int64)
    out = np.zeros((T, 1, 2), bool)
    one, two = (count_ops([OpLayer("l", np.array([[300], [256]]), x, out, synapses_per_weight=k)])["totals"]
                for k in (1, 2))
    assert (one["synops"], two["synops"]) == (24.0, 48.0)
    assert one["dense_macs"] == two["dense_macs"]


def test_wide_weights_take_twice_the_synaptic_memory(braille):
    """One layer of 38 neurons x 12 inputs, 8-bit synapses: the dense block is 38 * 12 * 8 bits = 456 bytes,
    twice that with two synapses per weight. Loihi 2 counts twice the synapses: a dense 1000 x 500 layer
    holds 500,000 synapses, within one core's assumed 120,000,000 / 128 = 937,500 (neurons 1000 <= 7812,
    fan-in 500 <= 4096: one core); as 16-bit weights 1,000,000 synapses, ceil(1,000,000 / 937,500) = 2
    cores, bound by synapses. ``spikeport energy`` on the 16-bit import maps it so (every layer two
    synapses per weight)."""
    layer = {"name": "l", "n_neurons": 38, "fan_in": 12, "n_synapses": 456, "weight_bits": 8}
    one, two = (map_to_loihi([{**layer, "synapses_per_weight": k}])["layers"][0] for k in (1, 2))
    assert (one["synaptic_memory_bytes"], two["synaptic_memory_bytes"]) == (456, 912)
    big = {"name": "b", "n_neurons": 1000, "fan_in": 500, "n_synapses": 500_000, "weight_bits": 8}
    l2 = [map_to_loihi2([{**big, "synapses_per_weight": k}])["layers"][0] for k in (1, 2)]
    assert [m["cores"] for m in l2] == [1, 2] and l2[1]["binding"] == "synapses"
    with pytest.raises(SpikeportError, match="synapses_per_weight must be 1 or 2"):
        map_to_loihi([{**layer, "synapses_per_weight": 3}])
    from spikeport.pipeline.energy_stage import energy

    tmp, _, _ = braille
    e = energy(tmp / "run16", inputs=tmp / "x.npy", samples=8)
    e8 = energy(tmp / "run8", inputs=tmp / "x.npy", samples=8)
    mem = [sum(layer["synaptic_memory_bytes"] for layer in r["loihi_mapping"]["layers"]) for r in (e8, e)]
    assert mem[1] == 2 * mem[0]


def test_wide_weights_after_a_sum_pool_on_lava():
    """A dense wide map after a tiling sum pool (2 channels, 6x6 -> 3x3): Lava's two Dense processes take the
    pool folded into the high and low bytes; spike for spike equal to the emulator."""
    from spikeport.core.linear import Pool2d

    rng = np.random.default_rng(1)
    w = rng.integers(-3000, 3000, (5, 18)).astype(np.int16)
    pop = Population("p", 5, loihi.LIFParams(du=2000, dv=300, vth=3000),
                     Connection("w", w, 0, in_shape=(2, 6, 6), pool=Pool2d((2, 2), (2, 2), (0, 0)), wide=True))
    net = LoihiNet((2, 6, 6), [pop], 6, False)
    x = (rng.random((6, 5, 72)) < 0.4).astype(np.int64)
    emu = emulator.run(net, x).spikes[0]
    assert emu.any() and int((emu != run_lava(net, x)[0]).sum()) == 0
