"""The ``current_sum`` readout (``spikeport import --readout current_sum``): a class is the output neuron
with the largest synaptic current u summed over the sample.

Independent references: a hand-computed case (two neurons, one always-on input, du = 4095: u = 64 w every
step; a voltage bias makes the weaker one spike every step, so spike counts and currents disagree), the
emulator's recorded u (itself equal to Lava's u, tests/test_core_lava.py) against the host's recomputation
from spikes, and Lava's spikes read out through the same function.
"""
import json

import nir
import numpy as np
import pytest

from spikeport import pipeline
from spikeport.core import loihi
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.readout import output_current, predict, predict_net
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.importer.finetune import finetune_run
from spikeport.importer.run import import_graph
from spikeport.nirfmt.load import load_nir
from spikeport.report.markdown import summary_rows
from tests.conftest import cli
from tests.test_finetune import sinabs_style_cnn


def _hand_net(readout: str) -> LoihiNet:
    lif = loihi.LIFParams(du=4095, dv=4095, vth=10, bias_mant=np.array([4000, 0]))
    pop = Population("out", 2, lif, Connection("w", np.array([[5], [6]], np.int8), 0))
    return LoihiNet((1,), [pop], 4, False, meta={"readout": readout})


def test_current_sum_hand_computed():
    """u = 64 * (5, 6) on each of 4 steps: sums (1280, 1536) -> class 1; neuron 0's bias (4000 > 640 = vth << 6)
    makes it spike on every step and neuron 1 never (v = 384): spike counts (4, 0) -> class 0."""
    x = np.ones((4, 1, 1), np.int64)
    for readout, want in (("spike_count", 0), ("current_sum", 1)):
        net = _hand_net(readout)
        spikes = emulator.run(net, x).spikes
        assert spikes[0][:, 0].sum(axis=0).tolist() == [4, 0]
        assert output_current(net, x, spikes)[:, 0].sum(axis=0).tolist() == [1280, 1536]
        assert predict_net(net, x, spikes).tolist() == [want]
    tie = np.zeros((4, 2, 3), np.int64)
    tie[:, 1, 2] = 1
    assert predict(np.zeros((4, 2, 3), bool), {"readout": "current_sum"}, tie).tolist() == [0, 2]  # ties: lowest
    with pytest.raises(ValueError, match="needs the output population's current"):
        predict(np.zeros((4, 1, 2), bool), {"readout": "current_sum"})


@pytest.mark.parametrize("layers", [1, 3])
def test_output_current_equals_the_emulators_u(layers):
    """Random nets (a recurrent output with a bias line; 3 layers, or the output alone fed by the input):
    u recomputed from the spikes equals the u the emulator records, every step, sample and neuron."""
    rng = np.random.default_rng(layers)
    sizes = [12, 20, 16, 6][-(layers + 1):]
    pops = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == layers - 1
        lif = loihi.LIFParams(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                              vth=int(rng.integers(50, 400)), bias_mant=rng.integers(-50, 200, n_out))
        q = lambda *shape: rng.integers(-127, 128, shape).astype(np.int8)  # noqa: E731
        pops.append(Population(f"p{i}", n_out, lif, Connection(f"w{i}", q(n_out, n_in), 0),
                               Connection(f"r{i}", q(n_out, n_out), -1) if last else None,
                               bias_line=Connection(f"l{i}", q(n_out, 1), 1) if last else None))
    net = LoihiNet((sizes[0],), pops, 10, False)
    x = (rng.random((10, 7, sizes[0])) < 0.4).astype(np.int64)
    run = emulator.run(net, x, record_states=True)
    assert run.spikes[-1].any() and not run.spikes[-1].all()
    assert np.array_equal(output_current(net, x, run.spikes), run.states[-1][0])


def test_import_current_sum_on_lava_and_emulator(tmp_path):
    """A Sinabs-style CNN imported with --readout current_sum: the graph says so, parity's predictions on Lava
    and the emulator are the argmax of the emulator's recorded u summed, and fine-tuning keeps the readout."""
    graph = sinabs_style_cnn(tmp_path / "cnn.nir")
    x = (np.random.default_rng(0).random((40, 8, 1, 8, 8)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = tmp_path / "run"
    info = import_graph(graph, dt=1.0, out=run, producer="sinabs", allow_approx=True, inputs=tmp_path / "x.npy",
                        readout="current_sum")
    assert info["readout"] == "current_sum"
    assert nir.read(str(run / "model.nir")).metadata["spikeport"]["readout"] == "current_sum"
    net = load_nir(run / "model.nir")
    res = pipeline.parity(run, backend="lava,emulator", samples=12, min_agreement=0.0)
    assert res["spike_mismatches"] == 0 and res["deployment"] == {"readout": "current_sum", "weight_bits": 8}
    assert ("imported deployment", "--readout current_sum, --weight-bits 8") in summary_rows({"parity": res})
    x_int = np.rint(np.swapaxes(np.load(run / "inputs.npy")[:12], 0, 1)).astype(np.int64).reshape(8, 12, -1)  # scored
    emu = emulator.run(net, x_int, record_states=True)
    want = emu.states[-1][0].sum(axis=0).argmax(axis=1)
    assert not np.array_equal(want, emu.output_counts().argmax(axis=1))  # the readouts differ on these samples
    theirs = np.load(run / "parity_outputs.npz")["float_reference"].argmax(axis=1)
    assert res["prediction_agreement"] == pytest.approx(float(np.mean(want == theirs)))
    ft = finetune_run(run, epochs=1, holdout=0.25, seed=1)
    assert json.loads((run / "import.json").read_text())["readout"] == "current_sum"
    assert load_nir(run / "model.nir").meta["readout"] == "current_sum"
    p = pipeline.parity(run, backend="lava,emulator", samples=8)  # Lava == emulator == the checkpoint's forward
    assert p["finetuned"] and p["passed"] and p["spike_mismatches"] == 0 and p["finetune"]["after"] == ft["after"]


def test_cli_readout_refused(tmp_path):
    graph = sinabs_style_cnn(tmp_path / "cnn.nir")
    proc = cli("import", str(graph), "--producer", "sinabs", "--dt", "1", "--out", str(tmp_path / "r"), "-T", "4",
               "--allow-approx", "--readout", "membrane", "-q")
    assert proc.returncode == 2 and "--readout must be one of spike_count, current_sum" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    with pytest.raises(SpikeportError, match="--readout"):
        import_graph(graph, dt=1.0, out=tmp_path / "r2", producer="sinabs", allow_approx=True, time_steps=4,
                     readout="spike_sequence")
