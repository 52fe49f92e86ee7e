"""The ``current_sum`` readout (``spikeport import --readout current_sum``): a class is the output neuron with
the largest synaptic current u summed over the sample, computed on the chip: the output population deployed
as a non-spiking integrator (dv = 0, threshold out of reach) whose voltage at the last step is that sum
(graph readout ``membrane``; spikeport no longer recomputes u on the host).

Independent references: a hand-computed case (two neurons, one always-on input, du = 4095: u = 64 w every
step; a voltage bias makes the weaker one spike every step, so spike counts and currents disagree); the u that
the emulator records for the spiking output population (itself equal to Lava's u, tests/test_core_lava.py),
summed: what the host computed before, against the integrator's v on Lava and the emulator, on random nets.
"""
import json

import nir
import numpy as np
import pytest

from spikeport import pipeline
from spikeport.core import loihi, quant
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.readout import predict, predict_net
from spikeport.deploy import emulator
from spikeport.deploy.supervise import run_lava
from spikeport.errors import SpikeportError
from spikeport.importer.finetune import finetune_run
from spikeport.importer.run import import_graph
from spikeport.nirfmt.load import load_nir
from spikeport.report.markdown import summary_rows
from tests.conftest import cli
from tests.test_finetune import sinabs_style_cnn


def _integrator(lif: loihi.LIFParams) -> loihi.LIFParams:
    return quant.as_integrator(quant.LayerQuant(np.zeros((1, 1), np.int8), 1.0, 0, 1.0, lif)).lif


def test_current_sum_hand_computed():
    """u = 64 * (5, 6) on each of 4 steps: the integrator's v at the last step is (1280, 1536) -> class 1; as a
    spiking LIF, neuron 0's bias (4000 > 640 = vth << 6) makes it spike every step and neuron 1 never: spike
    counts (4, 0) -> class 0. With the bias kept, the integrator's v adds 4 * 4000 to neuron 0 -> class 0."""
    lif = loihi.LIFParams(du=4095, dv=4095, vth=10, bias_mant=np.array([4000, 0]))
    conn = Connection("w", np.array([[5], [6]], np.int8), 0)
    x = np.ones((4, 1, 1), np.int64)
    spiking = LoihiNet((1,), [Population("out", 2, lif, conn)], 4, False, meta={"readout": "spike_count"})
    run = emulator.run(spiking, x)
    assert run.spikes[0][:, 0].sum(axis=0).tolist() == [4, 0] and predict_net(spiking, run.spikes).tolist() == [0]
    for bias, v_last, want in ((np.array([0, 0]), [1280, 1536], 1), (lif.bias_mant, [1280 + 16000, 1536], 0)):
        integ = _integrator(loihi.LIFParams(du=4095, dv=4095, vth=10, bias_mant=bias))
        net = LoihiNet((1,), [Population("out", 2, integ, conn)], 4, False, meta={"readout": "membrane"})
        run = emulator.run(net, x)
        assert net.regression and not run.spikes[0].any()
        assert run.values[-1, 0].tolist() == v_last and predict_net(net, run.spikes, run.values).tolist() == [want]
    tie = np.zeros((4, 2, 3), np.int64)
    tie[-1, 1, 2] = 1
    assert predict(np.zeros((4, 2, 3), bool), {"readout": "membrane"}, tie).tolist() == [0, 2]  # ties: lowest
    with pytest.raises(ValueError, match="needs the output population's voltage"):
        predict(np.zeros((4, 1, 2), bool), {"readout": "membrane"})
    with pytest.raises(ValueError, match="import it again"):  # a graph of the host-side readout
        predict(np.zeros((4, 1, 2), bool), {"readout": "current_sum"}, tie)


def _random_net(rng, layers: int, integrator: bool) -> LoihiNet:
    """Random CUBA nets (output with a bias line, no voltage bias), sizes 12-20-16-6 (the last ``layers``)."""
    sizes = [12, 20, 16, 6][-(layers + 1):]
    pops = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == layers - 1
        lif = loihi.LIFParams(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                              vth=int(rng.integers(50, 400)), bias_mant=0 if last else rng.integers(-50, 200, n_out))
        q = lambda *shape: rng.integers(-127, 128, shape).astype(np.int8)  # noqa: E731
        pops.append(Population(f"p{i}", n_out, _integrator(lif) if last and integrator else lif,
                               Connection(f"w{i}", q(n_out, n_in), 0),
                               bias_line=Connection(f"l{i}", q(n_out, 1), 1) if last else None))
    return LoihiNet((sizes[0],), pops, 10, False, meta={"readout": "membrane" if integrator else "spike_count"})


@pytest.mark.parametrize("layers", [1, 3])
def test_chip_side_sum_equals_the_host_side_sum_on_random_nets(layers):
    """The host-side readout (argmax of the spiking output's u, as the emulator records it, summed over the
    sample) and the chip-side one (argmax of the integrator's v at the last step, on Lava and the emulator)
    give the same classes; v is that sum exactly, every sample and neuron."""
    rng = np.random.default_rng(layers)
    spiking, chip = _random_net(np.random.default_rng(layers), layers, False), \
        _random_net(np.random.default_rng(layers), layers, True)
    x = (rng.random((10, 9, spiking.input_size)) < 0.4).astype(np.int64)
    host = emulator.run(spiking, x, record_states=True)
    assert host.spikes[-1].any() and not host.spikes[-1].all()
    u_sum = host.states[-1][0].sum(axis=0)
    emu = emulator.run(chip, x)
    lava_out, lava_values = run_lava(chip, x, with_values=True)
    assert np.array_equal(emu.values, lava_values) and np.array_equal(emu.values[-1], u_sum)
    assert all(np.array_equal(a, b) for a, b in zip(emu.spikes, lava_out))
    classes = u_sum.argmax(axis=1)
    assert len(set(classes.tolist())) > 1
    assert predict_net(chip, emu.spikes, emu.values).tolist() == classes.tolist()
    assert predict_net(chip, lava_out, lava_values).tolist() == classes.tolist()


def test_import_current_sum_on_lava_and_emulator(tmp_path):
    """A Sinabs-style CNN imported with --readout current_sum: the graph's output population is an integrator
    read by its voltage, Lava and the emulator agree value for value, and the classes equal the host-side
    readout of the same import with a spiking output (argmax of its recorded u summed); fine-tuning keeps the
    readout and deploys exactly."""
    graph = sinabs_style_cnn(tmp_path / "cnn.nir")
    x = (np.random.default_rng(0).random((40, 8, 1, 8, 8)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run, spiking = tmp_path / "run", tmp_path / "spiking"
    info = import_graph(graph, dt=1.0, out=run, producer="sinabs", allow_approx=True, inputs=tmp_path / "x.npy",
                        readout="current_sum")
    import_graph(graph, dt=1.0, out=spiking, producer="sinabs", allow_approx=True, inputs=tmp_path / "x.npy")
    assert info["readout"] == "current_sum" and info["deployed_readout"] == "membrane"
    assert nir.read(str(run / "model.nir")).metadata["spikeport"]["readout"] == "membrane"
    net, net_spiking = load_nir(run / "model.nir"), load_nir(spiking / "model.nir")
    last = net.populations[-1].lif
    assert net.regression and (last.dv, last.vth) == (0, loihi.INTEGRATOR_VTH)
    assert last.du == net_spiking.populations[-1].lif.du
    res = pipeline.parity(run, backend="lava,emulator", samples=12, min_agreement=0.0)
    assert res["spike_mismatches"] == 0 and res["value_mismatches"] == 0
    assert res["deployment"] == {"readout": "current_sum", "weight_bits": 8}
    assert res["output_values"]["emulator-lava"]["value_mismatches"] == 0
    assert ("imported deployment", "--readout current_sum, --weight-bits 8") in summary_rows({"parity": res})
    x_int = np.rint(np.swapaxes(np.load(run / "inputs.npy")[:12], 0, 1)).astype(np.int64).reshape(8, 12, -1)  # scored
    host = emulator.run(net_spiking, x_int, record_states=True)
    want = host.states[-1][0].sum(axis=0).argmax(axis=1)  # what the host-side readout computed
    assert not np.array_equal(want, host.output_counts().argmax(axis=1))  # the readouts differ on these samples
    emu = emulator.run(net, x_int)
    assert predict_net(net, emu.spikes, emu.values).tolist() == want.tolist()
    theirs = np.load(run / "parity_outputs.npz")["float_reference"].argmax(axis=1)
    assert res["prediction_agreement"] == pytest.approx(float(np.mean(want == theirs)))
    ft = finetune_run(run, epochs=1, holdout=0.25, seed=1)
    assert json.loads((run / "import.json").read_text())["readout"] == "current_sum"
    assert load_nir(run / "model.nir").meta["readout"] == "membrane"
    p = pipeline.parity(run, backend="lava,emulator", samples=8)  # Lava == emulator == the checkpoint's forward
    assert p["finetuned"] and p["passed"] and p["spike_mismatches"] == 0 and p["value_mismatches"] == 0
    assert p["finetune"]["after"] == ft["after"]


def test_cli_readout_refused(tmp_path):
    graph = sinabs_style_cnn(tmp_path / "cnn.nir")
    proc = cli("import", str(graph), "--producer", "sinabs", "--dt", "1", "--out", str(tmp_path / "r"), "-T", "4",
               "--allow-approx", "--readout", "membrane", "-q")
    assert proc.returncode == 2 and "--readout must be one of spike_count, current_sum" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    with pytest.raises(SpikeportError, match="--readout"):
        import_graph(graph, dt=1.0, out=tmp_path / "r2", producer="sinabs", allow_approx=True, time_steps=4,
                     readout="spike_sequence")
