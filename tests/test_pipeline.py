"""The whole path on one network: trained model -> NIR -> Lava and emulator, against the quantized
PyTorch forward."""
import json

import numpy as np
import pytest

from spikeport import pipeline as workflow
from spikeport.nirfmt.load import load_nir


def test_training_reaches_float_accuracy_and_quantization_keeps_it(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert m["float_accuracy"] >= 0.85
    assert abs(m["float_accuracy"] - m["quantized_accuracy"]) <= 0.03
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]


def test_lava_equals_quantized_pytorch_on_120_samples(tiny_run):
    res = workflow.parity(tiny_run, backend="lava,emulator", samples=120)
    assert res["samples"] == 120
    assert res["spike_mismatches"] == 0
    assert all(c["spike_mismatches"] == 0 for c in res["comparisons"])
    assert [c["pair"] for c in res["comparisons"]] == ["reference-lava", "reference-emulator", "lava-emulator"]
    assert res["backend_accuracy"] == res["reference_accuracy"]
    assert res["prediction_agreement"] == 1.0
    spikes = [row["spikes_a"] for row in res["per_layer"]]
    assert all(s > 0 for s in spikes)  # every layer really spikes
    saved = json.loads((tiny_run / "parity.json").read_text())
    for key in ("backend", "samples", "reference_accuracy", "float_accuracy", "backend_accuracy",
                "prediction_agreement", "spike_mismatches", "per_layer"):
        assert key in saved


def test_nir_float_parameters_describe_the_quantized_network(tiny_run):
    import nir

    g = nir.read(str(tiny_run / "model.nir"))
    net = load_nir(tiny_run / "model.nir")
    for i, pop in enumerate(net.populations):
        aff, lif = g.nodes[f"fc{i}"], g.nodes[f"lif{i}"]
        scale = float(aff.metadata["loihi"]["weight_scale"])
        np.testing.assert_allclose(aff.weight, pop.input.weight * scale)
        state = float(lif.metadata["loihi"]["state_scale"])
        np.testing.assert_allclose(lif.v_threshold, pop.lif.vth * state)
        dt = float(g.metadata["spikeport"]["dt"])
        np.testing.assert_allclose(1 - dt / lif.tau_mem, (4096 - pop.lif.dv) / 4096)
        np.testing.assert_allclose(1 - dt / lif.tau_syn, (4096 - pop.lif.du - 1) / 4096)


def test_energy_counts_match_a_direct_count(tiny_run):
    res = workflow.energy(tiny_run, samples=50)
    net = load_nir(tiny_run / "model.nir")
    x_int, _, _ = workflow.test_inputs(net, "digits", None, 50)
    from spikeport.deploy import emulator

    spikes = emulator.run(net, x_int).spikes
    # SynOps: hidden spikes x nonzero fan-out of each hidden neuron into the output layer, per sample
    fan_out = np.count_nonzero(net.populations[1].input.weight, axis=0)
    expected = float((spikes[0].sum(axis=(0, 1)) * fan_out).sum()) / 50
    assert res["synops"] == expected
    assert set(res["energy_j"]) >= {"loihi", "ann-fp32-45nm"}
    for name, price in res["prices"]["loihi"].items():
        assert price["source"]


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_sharded_parity_merges_exactly(tiny_run):
    """Two Lava children and two emulator workers give the same spikes as one run."""
    from spikeport.deploy import emulator
    from spikeport.deploy.shards import run_sharded

    net = load_nir(tiny_run / "model.nir")
    x_int, _, _ = workflow.test_inputs(net, "digits", None, 30)
    whole = emulator.run(net, x_int).spikes
    for backend in ("emulator", "lava"):
        parts = run_sharded(net, x_int, backend, shards=2)
        for a, b in zip(whole, parts):
            np.testing.assert_array_equal(a, b)
