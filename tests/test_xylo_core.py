"""Xylo Audio 2's integer neuron (core.xylo), the batched emulator and the limits, held against SynSense's own
simulator (xylosim, C++), Rockpool's XyloSim module built from spikeport's specification file, and hand-computed
cases. No samna anywhere."""
from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import pytest
import xylosim.v2  # noqa: F401  (the spikeport[xylo] extra: make test installs it; a missing one fails here)

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet
from spikeport.deploy import rockpool_xylo, xylo_emulator, xylo_sim
from spikeport.nirfmt import xylo_spec


def random_net(rng, nin=None, nh=None, no=None, T=25) -> XyloNet:
    """A random net inside every limit: dense to sparse weights, any decay, small and 16-bit thresholds, biases
    and shifts (so states saturate often)."""
    nin, nh, no = nin or int(rng.integers(1, 17)), nh or int(rng.integers(1, 40)), no or int(rng.integers(1, 9))
    dens, big = rng.random(), rng.random() < 0.5
    w = lambda shape, d: rng.integers(-128, 128, shape) * (rng.random(shape) < d)  # noqa: E731
    th_hi = 32768 if big else 200
    return XyloNet(weights_in=w((nin, nh, 2), dens), weights_rec=w((nh, nh, 2), dens * 0.5), weights_out=w((nh, no), dens),
                   dash_mem=rng.integers(0, 16, nh), dash_syn=rng.integers(0, 16, nh), dash_syn_2=rng.integers(0, 16, nh),
                   dash_mem_out=rng.integers(0, 16, no), dash_syn_out=rng.integers(0, 16, no),
                   threshold=rng.integers(1, th_hi, nh), threshold_out=rng.integers(1, th_hi, no),
                   bias=rng.integers(-500, 500, nh) * (rng.random() < 0.5),
                   bias_out=rng.integers(-500, 500, no) * (rng.random() < 0.5),
                   weight_shift_in=int(rng.integers(0, 9)), weight_shift_rec=int(rng.integers(0, 9)),
                   weight_shift_out=int(rng.integers(0, 9)), time_steps=T)


def test_no_samna():
    """samna's package-index releases are stubs that download from an unreachable host: never installed."""
    assert importlib.util.find_spec("samna") is None
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("samna")


def test_emulator_equals_xylosim_spikes_and_states():
    """40 random nets (saturating currents, dash 0..15, shifts, biases, 1..31 spikes per step): the batched
    emulator equals xylosim in every spike count and every recorded Vmem / Isyn / Isyn2 of every step."""
    rng = np.random.default_rng(26)
    for trial in range(40):
        net = random_net(rng)
        assert net.violations() == []
        x = rng.integers(0, 16, (25, 3, net.n_in)) * (rng.random((25, 3, net.n_in)) < rng.random())
        a, b = xylo_emulator.run(net, x, record_states=True), xylo_sim.run(net, x, record_states=True)
        for i in range(2):
            assert np.array_equal(a.spikes[i], b.spikes[i]), (trial, i)
        for key in xylo_emulator.STATES:
            assert np.array_equal(a.states[key], b.states[key]), (trial, key)
    assert max(int(a.spikes[0].max()), 0) <= xylo.HIDDEN_SPIKES_MAX


def _one(w=10, dash=1, dash_mem=1, th=25, x=(1, 0, 0, 3, 0, 0, 0, 0)):
    net = XyloNet(weights_in=[[[w, 0]]], weights_rec=np.zeros((1, 1, 2)), weights_out=[[50]], dash_mem=dash_mem,
                  dash_syn=dash, dash_syn_2=1, dash_mem_out=1, dash_syn_out=1, threshold=th, threshold_out=60,
                  bias=0, bias_out=0, time_steps=len(x))
    return net, np.asarray(x).reshape(-1, 1, 1)


def test_hand_computed_neuron():
    """By hand, dash 1: i = decay(i + 10 * events); v = v - max(v >> 1, 1) + i; 3 events at step 3 give
    i = 32 - 16 = 16, v = 5 - 2 + 16 = 19; no spike below 25. A positive 1 decays to 0 (at least one unit),
    a negative one by floor: -9 -> -4."""
    net, x = _one(th=30000)
    run = xylo_emulator.run(net, x, record_states=True)
    assert run.states["isyn"][:, 0, 0].tolist() == [5, 3, 2, 16, 8, 4, 2, 1]
    assert run.states["vmem"][:, 0, 0].tolist() == [5, 6, 5, 19, 18, 13, 9, 6]
    assert xylo.decay(np.array([1, -1, 9, -9]), 1).tolist() == [1, -1, 4, -5]
    # threshold 6, subtractive: step 1 v = 6 -> 1 spike, v = 0; step 3 v = 2 - 1 + 16 = 17 -> 2 spikes, v = 5;
    # step 4 v = 5 - 2 + 8 = 11 -> 1, v = 5; step 5 v = 5 - 2 + 4 = 7 -> 1, v = 1; then 2, 2
    net, x = _one(th=6)
    run = xylo_emulator.run(net, x, record_states=True)
    assert run.spikes[0][:, 0, 0].tolist() == [0, 1, 0, 2, 1, 1, 0, 0]
    assert run.states["vmem"][:, 0, 0].tolist() == [5, 0, 2, 5, 5, 1, 2, 2]


def test_saturation_is_per_event_in_source_order():
    """Two events +30000 then -30000 into a current at 20000: saturating after each event gives
    32767 - 30000 = 2767, the plain sum 20000 (xylosim does the former)."""
    state = np.array([[20000]])
    got = xylo.deliver(state, np.array([[1, 1]]), np.array([[30000], [-30000]]))
    assert got.tolist() == [[2767]]
    got = xylo.deliver(state, np.array([[1, 1]]), np.array([[-30000], [30000]]))
    assert got.tolist() == [[20000]]  # -10000 stays inside: exact


def test_spec_file_runs_on_rockpool_from_specification(tmp_path):
    """model.xylo.json's 'specification' builds Rockpool's own XyloSim (loaded without samna) and it equals the
    emulator spike for spike and in Vmem."""
    rng = np.random.default_rng(7)
    net = random_net(rng, 8, 30, 4, T=20)
    path = xylo_spec.write(tmp_path / "model.xylo.json", net, {"readout": "spike_count"})
    import json

    spec = {k: np.asarray(v) for k, v in json.loads(path.read_text())["specification"].items()}
    mod = rockpool_xylo.xylo_sim_class().from_specification(**spec)
    x = rng.integers(0, 5, (20, 4, 8))
    run = xylo_emulator.run(xylo_spec.read(path), x, record_states=True)
    for b in range(4):
        mod.reset_state()
        out, _, rec = mod.evolve(x[:, b], record=True)
        assert np.array_equal(out, run.spikes[1][:, b])
        assert np.array_equal(rec["Spikes"], run.spikes[0][:, b])
        assert np.array_equal(rec["Vmem"], run.states["vmem"][:, b])
    assert importlib.util.find_spec("samna") is None


@pytest.mark.parametrize("change, words", [
    (dict(nin=17), "17 input channels"), (dict(nh=1001), "1001 hidden neurons"), (dict(no=9), "9 output neurons"),
    (dict(weight_shift_in=16), "weight_shift_in = 16"), (dict(weight_shift_rec=9), "would wrap"),
    (dict(dash_mem=16), "dash_mem reaches"), (dict(dash_syn_out=-1), "dash_syn_out reaches"),
    (dict(threshold=0), "threshold reaches 0"), (dict(fanout=65), "65 recurrent targets"),
])
def test_limits_one_line_each(change, words):
    nin, nh, no = change.pop("nin", 4), change.pop("nh", 70), change.pop("no", 3)
    fan = change.pop("fanout", 0)
    rec = np.zeros((nh, nh, 2), np.int64)
    rec[0, :fan, 0] = 1
    rec[1, 1, 0] = 100  # 100 << 9 = 51200 leaves the 16-bit state
    kw = dict(weights_in=np.ones((nin, nh, 2)), weights_rec=rec,
              weights_out=np.ones((nh, no)), dash_mem=1, dash_syn=1, dash_syn_2=1, dash_mem_out=1, dash_syn_out=1,
              threshold=10, threshold_out=10, bias=0, bias_out=0)
    kw.update(change)
    found = XyloNet(**kw).violations()
    assert len(found) == 1 and words in found[0], found


def test_spec_file_rejects_bad_fields(tmp_path):
    import json

    rng = np.random.default_rng(1)
    path = xylo_spec.write(tmp_path / "m.xylo.json", random_net(rng, 2, 3, 2), {})
    doc = json.loads(path.read_text())
    doc["specification"]["weights_in"] = [[1.5]]
    path.write_text(json.dumps(doc))
    from spikeport.errors import SpikeportError

    with pytest.raises(SpikeportError, match="weights_in must be a 3-dimensional list of integers"):
        xylo_spec.read(path)


def test_quantization_by_hand():
    """A matrix into a population of state unit 1/1024 (threshold 1.0 = 1024): 0.5 is 512 units, above 8 bits
    unshifted (and 128 at shift 2), so shift 3 and 512 / 8 = 64; a leak 0.9375 is dash 4, 0.9 the nearest in time
    constant, dash 3 (0.875), 0.5 dash 1."""
    from spikeport.core.xylo_quant import quantize_matrix

    q, k, step = quantize_matrix(np.array([[0.5, -0.25, 0.001]]), 1 / 1024)
    assert (k, step, q.tolist()) == (3, 8 / 1024, [[64, -32, 0]])
    assert xylo.dash_from_factor([0.9375, 0.9, 0.5, 0.0]).tolist() == [4, 3, 1, 0]
    assert xylo.decay_factor(4) == 0.9375


def test_membrane_stuck_at_minimum_with_dash_zero():
    """xylosim's int16 quirk, by hand: v = -32768 with dash_mem 0 decays by -32768, whose negation wraps to
    -32768, so v stays at -32768 even with the currents at +16128 (exact arithmetic would give 16128)."""
    net = XyloNet(weights_in=[[[-128, -128]], [[127, 127]]], weights_rec=np.zeros((1, 1, 2)), weights_out=[[1]],
                  dash_mem=0, dash_syn=1, dash_syn_2=1, dash_mem_out=1, dash_syn_out=1, threshold=30000,
                  threshold_out=100, bias=0, bias_out=0, weight_shift_in=8, time_steps=3)
    x = np.array([[1, 0], [0, 1], [0, 0]]).reshape(3, 1, 2)
    for run in (xylo_emulator.run(net, x, True), xylo_sim.run(net, x, True)):
        assert run.states["isyn"][:, 0, 0].tolist() == [-16384, 8064, 4032]  # -32768 halved; (-16384 + 32512) halved
        assert run.states["vmem"][:, 0, 0].tolist() == [-32768, -32768, -32768]
