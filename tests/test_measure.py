"""spikeport.measure against hand counts, published numbers (Davies et al. 2018, Horowitz 2014) and NeuroBench.

Every expected count below was worked out by hand from the small matrices and spike trains
written next to it; the energy checks recompute prices straight from the TOML file.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib

from spikeport.errors import SpikeportError
from spikeport.measure import OpLayer, count_ops, estimate_energy, load_profiles, map_to_loihi
from spikeport.measure import energy as energy_mod
from spikeport.measure import ops as ops_mod

# ---- a 3-4-2 network with known spikes, T=3, B=2 -------------------------------------------
# W1 column nnz (fan-out) = [2, 1, 2]; W2 column nnz = [2, 1, 0, 1].
W1 = np.array([[2, 0, 1], [0, 0, 3], [-1, 4, 0], [0, 0, 0]])
W2 = np.array([[1, 0, 0, 5], [2, 3, 0, 0]])
X1 = np.array([[[1, 0, 0], [0, 1, 1]],
               [[0, 0, 0], [1, 1, 1]],
               [[0, 1, 0], [0, 0, 0]]])          # [T=3, B=2, 3]
S1 = np.array([[[1, 0, 0, 0], [0, 0, 1, 0]],
               [[0, 0, 0, 1], [1, 1, 0, 0]],     # neuron 3 spikes with no input (bias)
               [[0, 0, 0, 0], [0, 1, 0, 0]]])    # [T, B, 4]
S2 = np.array([[[0, 1], [0, 0]],
               [[1, 0], [1, 1]],
               [[0, 0], [0, 0]]])                # [T, B, 2]


def two_layer(w1=W1, x1=X1, graded=False):
    return [OpLayer("fc1", sp.csr_matrix(w1), x1, S1, graded_input=graded),
            OpLayer("fc2", sp.csr_matrix(W2), S1, S2)]


def test_hand_counted_two_layer_net():
    c = count_ops(two_layer())
    fc1, fc2 = c["layers"]
    assert (c["samples"], c["time_steps"]) == (2, 3)
    # fc1 synops per step: t0 2+3, t1 0+5, t2 1+0 -> 11 over 2 samples.
    assert fc1["synops"] == 5.5
    assert fc1["per_step"]["synops"] == [2.5, 2.5, 0.5]
    # Reached or spiked: t0 {0,2},{0,1,2}; t1 {3},{0,1,2}; t2 {2},{1} -> 11 neuron-steps.
    assert fc1["neuron_updates_active"] == 5.5
    assert fc1["neuron_updates"] == 12 and fc1["neuron_updates_inactive"] == 6.5
    assert fc1["spikes_out"] == 3 and fc1["firing_rate"] == 6 / 24
    assert fc1["activation_sparsity"] == pytest.approx(11 / 18)
    assert fc1["dense_macs"] == 12 and fc1["dense_macs_per_step_total"] == 36
    assert fc1["nnz"] == 5
    # fc2: t0 2+0, t1 1+3, t2 0+1 -> 7; active t0 2, t1 3, t2 1 -> 6.
    assert fc2["synops"] == 3.5 and fc2["neuron_updates_active"] == 3
    assert fc2["spikes_out"] == 2
    tot = c["totals"]
    assert tot["synops"] == 9 and tot["effective_macs"] == 0
    assert tot["dense_macs"] == 20 and tot["neuron_updates"] == 18
    assert tot["neuron_updates_active"] == 8.5 and tot["neuron_updates_inactive"] == 9.5
    assert tot["firing_rate"] == pytest.approx(10 / 36)
    assert c["per_step"]["synops"] == [3.5, 4.5, 1.0]
    assert c["per_step"]["spikes_out"] == [1.5, 3.0, 0.5]  # fc1 2,3,1 + fc2 1,3,0
    json.dumps(c, allow_nan=False)  # JSON-ready


def test_zero_weights_are_not_counted():
    # Explicitly stored zeros (a pruned mask applied in place) must count like absent weights.
    coo = sp.coo_matrix(W1)
    rows = np.r_[coo.row, 3, 3, 3, 1]
    cols = np.r_[coo.col, 0, 1, 2, 0]
    stored_zeros = sp.csr_matrix((np.r_[coo.data, 0, 0, 0, 0], (rows, cols)), shape=(4, 3))
    assert stored_zeros.nnz == 9
    layer = OpLayer("fc1", stored_zeros, X1, S1)
    pruned = count_ops([layer])["layers"][0]
    reference = count_ops(two_layer()[:1])["layers"][0]
    assert pruned == reference
    assert stored_zeros.nnz == 9  # the caller's matrix is not modified
    dense = count_ops([OpLayer("fc1", np.ones((4, 3)), X1, S1)])["layers"][0]
    assert dense["synops"] == 7 * 4 / 2  # 7 input events x fan-out 4, per sample


def test_graded_first_layer_counts_effective_macs():
    graded = X1 * np.array([0.5, -3.0, 7.25])  # same nonzero pattern, arbitrary values
    c = count_ops(two_layer(x1=graded, graded=True))
    fc1 = c["layers"][0]
    assert fc1["effective_macs"] == 5.5 and fc1["synops"] == 0
    assert c["totals"]["effective_macs"] == 5.5 and c["totals"]["synops"] == 3.5
    assert fc1["neuron_updates_active"] == 5.5
    with pytest.raises(SpikeportError, match="fc1.*graded_input"):
        count_ops(two_layer(x1=graded, graded=False))


def test_recurrent_synops_use_previous_step_spikes():
    # 2 neurons, one input; R[1, 0] = 4: a spike of neuron 0 at t reaches neuron 1 at t+1.
    w = np.array([[1], [0]])
    rec = sp.csr_matrix(np.array([[0, 0], [4, 0]]))
    x = np.array([[[1]], [[0]], [[0]]])
    s = np.array([[[1, 0]], [[1, 0]], [[0, 1]]])
    layer = count_ops([OpLayer("r", w, x, s, recurrent=rec)])["layers"][0]
    assert layer["per_step"]["synops"] == [1, 1, 1]  # t0 input; t1, t2 from neuron 0's spikes
    assert layer["neuron_updates_active"] == 1 + 2 + 1  # t0 {0}; t1 {0 spiked, 1 reached}; t2 {1}
    assert layer["dense_macs"] == 2 + 4 and layer["recurrent_nnz"] == 1


def test_sparse_path_matches_dense_path(monkeypatch):
    rng = np.random.default_rng(3)
    w = sp.random(60, 50, density=0.1, format="csr", random_state=4)
    x = (rng.random((5, 7, 50)) < 0.2).astype(np.int8)
    s = (rng.random((5, 7, 60)) < 0.1).astype(np.int8)
    rec = sp.random(60, 60, density=0.05, format="csr", random_state=5)
    dense = count_ops([OpLayer("a", w, x, s, recurrent=rec)])
    monkeypatch.setattr(ops_mod, "_DENSE_PATTERN_LIMIT", 0)
    monkeypatch.setattr(ops_mod, "_ROW_CHUNK", 4)
    assert count_ops([OpLayer("a", w, x, s, recurrent=rec)]) == dense


def test_bad_shapes_name_the_layer():
    with pytest.raises(SpikeportError, match="'fc1'.*input_events"):
        count_ops([OpLayer("fc1", W1, X1[..., :2], S1)])
    with pytest.raises(SpikeportError, match="disagree"):
        count_ops([OpLayer("a", W1, X1, S1), OpLayer("b", W2, S1[:2], S2[:2])])


def test_measure_does_not_import_torch_or_lava():
    code = "import sys, spikeport.measure; print([m for m in ('torch', 'lava') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- energy -----------------------------------------------------------------------------------

def _toml_prices():
    with open(energy_mod.PACKAGED_PROFILES, "rb") as fh:
        return tomllib.load(fh)["profiles"]


def test_energy_is_counts_times_prices_for_every_profile():
    counts = count_ops(two_layer())
    tot = counts["totals"]
    result = estimate_energy(counts)
    raw = _toml_prices()
    assert set(result["energy_j"]) == set(raw)
    for name, prof in raw.items():
        p = {k: v["value_j"] for k, v in prof["prices"].items()}
        if prof["kind"] == "snn":
            expect = p["synop"] * (tot["synops"] + tot["effective_macs"])
            if "neuron_active" in p:
                expect += p["neuron_active"] * 8.5 + p["neuron_inactive"] * 9.5
            expect += p.get("neuron", 0) * 18 + p.get("spike", 0) * 5
        else:
            expect = p["mac"] * 20 + p.get("neuron", 0) * 6  # 20 dense MACs, 4 + 2 ANN neurons
            if "weight_memory" in prof:  # both layers are far below 8 KiB: 10 pJ per 64 bits
                expect += 20 * 10e-12 * prof["weight_memory"]["weight_bits"] / 64
        assert result["energy_j"][name] == pytest.approx(expect, rel=1e-12), name
        assert sum(result["breakdown"][name].values()) == pytest.approx(expect, rel=1e-12)
        for price in result["prices"][name].values():
            assert price["source"] and price["quality"] in energy_mod.QUALITIES
            assert price["value_j"] > 0
    json.dumps(result, allow_nan=False)
    assert any("Loihi 2" in n for n in result["notes"])


def test_worked_example_of_energy_md():
    """784->128, T=10, 10% input rate: Loihi ~2.47 uJ; fp32 ANN 0.46 / 2.92 uJ; int8 0.34 uJ."""
    rng = np.random.default_rng(0)
    steps, samples = 10, 3
    x = np.zeros((samples, steps * 784), dtype=np.int8)
    for b in range(samples):  # exactly 10% of the 7840 input slots per sample
        x[b, rng.permutation(steps * 784)[:784]] = 1
    x = x.reshape(samples, steps, 784).transpose(1, 0, 2)
    w = rng.integers(1, 128, size=(128, 784))  # dense, no zero weights
    s = np.zeros((steps, samples, 128), dtype=np.int8)
    counts = count_ops([OpLayer("fc", w, x, s)])
    assert counts["totals"]["synops"] == 784 * 128
    assert counts["totals"]["neuron_updates_active"] == 1280  # every neuron gets input every step
    e = estimate_energy(counts)["energy_j"]
    assert e["loihi"] * 1e6 == pytest.approx(2.47, abs=0.005)
    assert e["ann-fp32-45nm"] * 1e6 == pytest.approx(0.46, abs=0.005)
    assert e["ann-fp32-45nm-mem"] * 1e6 == pytest.approx(2.92, abs=0.005)
    assert e["ann-int8-45nm-mem"] * 1e6 == pytest.approx(0.34, abs=0.005)
    assert e["ann-int8-45nm"] * 1e6 == pytest.approx(0.0231, abs=0.0001)  # compute only


USER_PROFILE = """
[profiles.mychip]
kind = "snn"
description = "a user chip"
[profiles.mychip.prices.synop]
value_j = 5e-12
source = "our lab measurement"
year = 2024
quality = "silicon measurement"
[profiles.loihi]
kind = "snn"
[profiles.loihi.prices.synop]
value_j = 1e-12
source = "override"
"""


def test_user_profile_file_adds_and_replaces(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(USER_PROFILE)
    profiles = load_profiles(path)
    assert profiles["mychip"].prices["synop"].value_j == 5e-12
    assert profiles["loihi"].prices["synop"].source == "override"
    assert "spinnaker" in profiles
    counts = count_ops(two_layer())
    e = estimate_energy(counts, profiles, names=["mychip"])
    assert e["energy_j"] == {"mychip": pytest.approx(9 * 5e-12)}
    with pytest.raises(SpikeportError, match="unknown energy profile"):
        estimate_energy(counts, profiles, names=["nope"])


def _synop(value="1e-12", extra="", name="synop"):
    return f'kind = "snn"\n[profiles.x.prices.{name}]\nvalue_j = {value}\nsource = "s"\n{extra}'


@pytest.mark.parametrize("body, key", [
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\n', "profiles.x.prices.synop.source"),
    (_synop("-1.0"), "profiles.x.prices.synop.value_j"),
    (_synop("nan"), "profiles.x.prices.synop.value_j"),
    (_synop('"1 pJ"'), "profiles.x.prices.synop.value_j"),
    (_synop(name="synapse"), "profiles.x.prices.synapse"),
    (_synop(extra='quality = "vibes"\n'), "profiles.x.prices.synop.quality"),
    ('kind = "fpga"\n', "profiles.x.kind"),
    (_synop(name="neuron").replace('"snn"', '"ann"'), "profiles.x.prices.mac"),
])
def test_bad_profile_files_name_file_and_key(tmp_path, body, key):
    path = tmp_path / "bad.toml"
    path.write_text("[profiles.x]\n" + body)
    with pytest.raises(SpikeportError) as err:
        load_profiles(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_unreadable_profile_files(tmp_path):
    with pytest.raises(SpikeportError, match="not found"):
        load_profiles(tmp_path / "missing.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[profiles.x\n")
    with pytest.raises(SpikeportError, match="broken.toml"):
        load_profiles(bad)


# ---- Loihi mapping ----------------------------------------------------------------------------

def net_784_1500_10(density: float = 1.0):
    return [{"name": "fc1", "n_neurons": 1500, "fan_in": 784, "fan_out": None,
             "n_synapses": int(784 * 1500 * density), "weight_bits": 8},
            {"name": "fc2", "n_neurons": 10, "fan_in": 1500, "fan_out": None,
             "n_synapses": int(1500 * 10 * density), "weight_bits": 8}]


def test_mapping_784_1500_10():
    # Pruned to 5%: 58800 synapses x 16 bits = 115 KiB fits one core's memory; 1500 neurons
    # need two cores of 1024: the neuron count binds.
    m = map_to_loihi(net_784_1500_10(density=0.05))
    fc1 = m["layers"][0]
    assert fc1["cores"] == 2 and fc1["binding"] == "neurons"
    assert fc1["synapse_format"] == "sparse"
    assert m["layers"][1]["cores"] == 1 and m["total_cores"] == 3 and m["chips"] == 1
    # Dense 8-bit: 784 x 1500 bytes = 1.18 MB over 128 KiB per core -> 9 cores; memory binds.
    m = map_to_loihi(net_784_1500_10())
    fc1 = m["layers"][0]
    assert fc1["cores"] == 9 and fc1["binding"] == "synaptic_memory"
    assert fc1["cores_by_constraint"]["neurons"] == 2
    assert fc1["synapse_format"] == "dense"


def test_mapping_axon_limits_and_errors():
    wide = [{"name": "wide", "n_neurons": 100, "fan_in": 10000, "fan_out": 1,
             "n_synapses": 1000, "weight_bits": 8}]
    layer = map_to_loihi(wide)["layers"][0]
    assert layer["cores_by_constraint"]["input_axons"] == 3
    assert layer["cores"] == 3 and layer["binding"].startswith("input_axons")
    fanout = [{"name": "f", "n_neurons": 1024, "fan_out": 10, "fan_in": 10, "n_synapses": 10,
               "weight_bits": 8}]
    assert map_to_loihi(fanout)["layers"][0]["binding"] == "output_axons"  # 10240 axons / 4096
    with pytest.raises(SpikeportError, match="'f'.*weight_bits"):
        map_to_loihi([{**fanout[0], "weight_bits": 16}])
    with pytest.raises(SpikeportError, match="missing"):
        map_to_loihi([{"name": "g", "n_neurons": 3}])
    assert math.ceil(200 / 128) == map_to_loihi(
        [{"name": f"l{i}", "n_neurons": 1024, "fan_in": 1, "fan_out": 1, "n_synapses": 1,
          "weight_bits": 8} for i in range(200)])["chips"]


# ---- NeuroBench, the reference users trust -------------------------------------------------

def test_synops_match_neurobench():
    """Same weights (with pruned zeros) and spikes through NeuroBench's SynapticOperations.

    neurobench 2.3.0 installs beside lava-nc/torch without changing numpy or torch. It is a test
    dependency (pyproject's ``test`` extra), so where it is missing the test fails, never skips.
    """
    import torch
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    rng = np.random.default_rng(7)
    steps, samples = 6, 4
    w1 = rng.integers(-5, 6, size=(20, 12)) * (rng.random((20, 12)) < 0.4)
    w2 = rng.integers(-5, 6, size=(5, 20)) * (rng.random((5, 20)) < 0.6)
    x = rng.random((steps, samples, 12)) * (rng.random((steps, samples, 12)) < 0.3)
    hidden = (rng.random((steps, samples, 20)) < 0.3).astype(np.float32)
    out = (rng.random((steps, samples, 5)) < 0.3).astype(np.float32)

    class Replay(torch.nn.Module):  # feeds the recorded inputs through the two Linear layers
        def __init__(self, inputs):
            super().__init__()
            self.fc1 = torch.nn.Linear(12, 20, bias=False)
            self.fc2 = torch.nn.Linear(20, 5, bias=False)
            self.fc1.weight.data = torch.tensor(w1, dtype=torch.float32)
            self.fc2.weight.data = torch.tensor(w2, dtype=torch.float32)
            self.inputs = inputs

        def forward(self, batch):
            for t in range(steps):
                self.fc1(torch.tensor(self.inputs[t], dtype=torch.float32))
                self.fc2(torch.tensor(hidden[t]))
            return batch

    for graded in (False, True):
        inputs = x if graded else (x > 0).astype(np.float32)
        model = TorchModel(Replay(inputs))
        model.register_hooks()
        data = torch.zeros(samples, steps, 12)
        metric = SynapticOperations()
        nb = metric(model, model(data), (data, torch.zeros(samples)))
        model.cleanup_hooks()
        ours = count_ops([OpLayer("fc1", w1, inputs, hidden, graded_input=graded),
                          OpLayer("fc2", w2, hidden, out)])["totals"]
        if graded:
            assert nb["Effective_MACs"] == pytest.approx(ours["effective_macs"])
            assert nb["Effective_ACs"] == pytest.approx(ours["synops"])
        else:
            assert nb["Effective_ACs"] == pytest.approx(ours["synops"])
            assert nb["Effective_MACs"] == 0
        assert nb["Dense"] == pytest.approx(ours["dense_macs_per_step_total"])
