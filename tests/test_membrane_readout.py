"""The membrane readout of trained nets (``spikeport train --readout membrane``): the output layer is a
non-spiking integrator (no voltage leak, the threshold lava-dl writes for such a block, out of reach), trained
with the loss on its voltage, the class read once at the last step.

Independent references: Lava's fixed_pt LIF and lava-dl's own netx loader running the exported files (their
voltages per step, recorded), onnxruntime running the ONNX export, the emulator's recorded current u (the
integrator's v must be its running sum: no leak, no reset, no clip), and hand-computed worst cases of the
24-bit voltage bound.
"""
import json

import numpy as np
import pytest
import torch

from spikeport import pipeline
from spikeport.core import loihi, quant
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.deploy import emulator
from spikeport.deploy.supervise import run_lava
from spikeport.errors import SpikeportError
from spikeport.export.onnx_export import export_onnx
from spikeport.nirfmt.load import load_nir
from spikeport.train import checkpoint
from spikeport.train.config import TrainConfig
from spikeport.train.model import LayerSpec, LIFDense
from tests.conftest import cli


@pytest.fixture(scope="module")
def membrane_run(tmp_path_factory):
    """``spikeport train --readout membrane`` on digits (a few epochs), exported to NIR, netx and ONNX."""
    run = tmp_path_factory.mktemp("membrane") / "run"
    proc = cli("train", "--data", "digits", "--epochs", "3", "--hidden", "32", "-T", "6", "--readout", "membrane",
               "--out", str(run), "-q")
    assert proc.returncode == 0, proc.stderr
    proc = cli("export", str(run), "--netx", "--onnx", "-q")
    assert proc.returncode == 0, proc.stderr
    return run


def test_trained_membrane_net_deploys_exactly(membrane_run):
    """The integrator's voltage per step is the same on the checkpoint's integer forward, Lava, the emulator and
    netx (every step, sample and neuron), so are every hidden spike and every prediction; it is the running sum
    of the emulator's u (no leak, no reset, no clip); the class is argmax of the last step's voltage."""
    metrics = json.loads((membrane_run / "metrics.json").read_text())
    assert metrics["quantized_accuracy"] > 0.6 and metrics["firing_rates"][-1] == 0.0
    net = load_nir(membrane_run / "model.nir")
    last = net.populations[-1].lif
    assert net.meta["readout"] == "membrane" and net.regression
    assert (last.dv, last.vth, last.spiking) == (0, loihi.INTEGRATOR_VTH, False)
    res = pipeline.parity(membrane_run, backend="lava,emulator,netx", samples=12)
    assert res["passed"] and res["spike_mismatches"] == 0 and res["value_mismatches"] == 0
    assert set(res["output_values"]) == {"reference-lava", "reference-emulator", "reference-netx", "lava-emulator"}
    for c in res["comparisons"]:
        if "backend" in c:
            assert c["backend_accuracy"] == res["reference_accuracy"] and c["prediction_agreement"] == 1.0
    outs = np.load(membrane_run / "parity_outputs.npz")
    assert np.array_equal(outs["lava"], outs["reference"])  # the last step's voltages, [B, 10]
    assert res["reference_accuracy"] == pytest.approx(float(np.mean(outs["lava"].argmax(1) == outs["labels"])))
    x_int, _, _ = pipeline.test_inputs(net, "digits", None, 16)
    run = emulator.run(net, x_int, record_states=True)
    u = run.states[-1][0]
    assert np.abs(run.values).max() > 1000 and np.array_equal(run.values, np.cumsum(u, axis=0))


def test_onnx_export_gives_the_integrators_voltage(membrane_run, tmp_path):
    """onnxruntime runs the ONNX export to the checkpoint's integer voltages, every step, on all test samples."""
    import onnxruntime as ort

    path = export_onnx(membrane_run, tmp_path / "model.onnx")
    net = load_nir(membrane_run / "model.nir")
    x_int, _, _ = pipeline.test_inputs(net, "digits", None, None)
    model, _, _ = checkpoint.load(membrane_run)
    ref = [o.numpy() for o in model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"x": x_int.reshape(x_int.shape[0], x_int.shape[1], -1).astype(np.int64)}
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    assert list(outs) == ["spikes_0", "spikes_1", "values"] and not outs["spikes_1"].any()
    assert np.array_equal(outs["spikes_0"], ref[0]) and np.array_equal(outs["values"], ref[1])


def test_netx_integrator_block_is_slayers_affine(membrane_run, tmp_path):
    """The exported integrator block has exactly the neuron group lava-dl's slayer writes for a cuba.Affine block
    with dynamics (current decay 0.5, no voltage decay: vThMant (1 << 18) - 1), and netx_net reads both files'
    block into the same non-spiking LIF, the one model.nir deploys."""
    import h5py
    from lava.lib.dl import slayer

    from spikeport.nirfmt import netx_net

    blk = slayer.block.cuba.Affine({"threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.0,
                                    "requires_grad": False}, 32, 10, weight_scale=2, weight_norm=False)
    blk(torch.rand(2, 32, 4))
    theirs = tmp_path / "affine.net"
    with h5py.File(theirs, "w") as fh:
        blk.export_hdf5(fh.create_group("layer").create_group("0"))

    def neuron(path, block):
        with h5py.File(path) as fh:
            return {k: np.asarray(v[()]).reshape(-1)[0] for k, v in fh[f"layer/{block}/neuron"].items()}
    ours = neuron(membrane_run / "model.net", 2)
    assert ours == neuron(theirs, 0) and ours["vThMant"] == loihi.INTEGRATOR_VTH
    want = load_nir(membrane_run / "model.nir").populations[-1].lif
    for path in (membrane_run / "model.net", theirs):
        net, _ = netx_net.read(path, 6)
        last = net.populations[-1].lif
        assert net.output == "values" and net.regression
        assert (last.du, last.dv, last.vth, int(np.abs(last.effective_bias()).max())) == (want.du, 0, want.vth, 0)


def _worst_case(layer: LIFDense, steps: int):
    """The integer input that drives the layer's most-driven neuron to its largest voltage: every input at its
    largest value where that neuron's weight is positive, on every step; (x [T, 1, in], neuron)."""
    q = layer.quant().weight.astype(np.int64)
    n = int(np.clip(q, 0, None).sum(1).argmax())
    x = np.where(q[n] > 0, layer.max_input_int(), 0).astype(np.int64)
    return np.broadcast_to(x, (steps, 1, x.size)).copy(), n


@pytest.mark.parametrize("netx, n_in, unit", [(False, 200, 1 / 255), (True, 1500, 1.0)])
def test_integrator_voltage_never_saturates_at_its_bound(netx, n_in, unit):
    """Large positive weights as an integrator over 16 steps, beta_syn 0 (u is the step's input, so v[T-1] =
    16 * 64 * a by hand): graded (pixel) inputs, where the summed input is shifted right, and binary spikes for
    netx, whose weight step is coarsened instead. Driven to its worst case, v reaches more than a quarter of
    Loihi's 24-bit range and stays exact (the hand sum, no clip), on Lava and in the integer forward; one bit
    less of shift (a 2x finer netx weight step) would saturate."""
    torch.manual_seed(0)
    steps = 16
    layer = LIFDense(LayerSpec(n_in, 4, beta_syn=0.0), input_unit=unit)
    with torch.no_grad():
        layer.weight.uniform_(0.2, 1.0)
    layer.netx = netx
    layer.make_integrator(steps)
    x, n = _worst_case(layer, steps)
    lq = layer.quant()
    a = int(loihi.shift_exp(int(lq.weight[n].astype(np.int64) @ x[0, 0]), lq.weight_exp))
    v = layer.forward_int(torch.from_numpy(x), lq).numpy()
    assert v[-1, 0, n] == steps * 64 * a > loihi.V_LIMIT // 4
    finer = (lq.weight[n].astype(np.int64) * 2) @ x[0, 0] if netx else loihi.shift_exp(
        int(lq.weight[n].astype(np.int64) @ x[0, 0]), lq.weight_exp + 1)
    assert steps * 64 * int(finer) > loihi.V_LIMIT  # one step finer would not fit
    net = LoihiNet((n_in,), [Population("out", 4, lq.lif, Connection("w", lq.weight, lq.weight_exp))], steps, unit < 1,
                   meta={"readout": "membrane"})
    _, values = run_lava(net, x, with_values=True)
    assert np.array_equal(values, v)


def test_membrane_config_and_refusals(tmp_path):
    """The readout is a checked config field; spikeseq reads its spike trains only; a membrane graph whose
    output population can spike is refused when loaded."""
    assert TrainConfig(readout="membrane").readout == "membrane"
    with pytest.raises(SpikeportError, match="readout"):
        TrainConfig(method="spikeseq", readout="membrane")
    with pytest.raises(SpikeportError, match="readout"):
        TrainConfig(readout="voltage")
    cfg = TrainConfig(data="digits", hidden=[8], readout="membrane", bias=True, target="lava")
    model = checkpoint.build_model(cfg, 64, 10, (1, 8, 8))
    lq = model.layers[-1].quant()
    assert model.layers[-1].integrator_steps == cfg.time_steps and lq.lif.dv == 0 and not lq.lif.spiking
    assert quant.integrator_peak(lq.weight, 1, lq.lif.du, -lq.weight_exp, cfg.time_steps,
                                 float(np.abs(lq.lif.effective_bias()).max())) <= loihi.V_LIMIT
    from spikeport.export.nir_export import build_graph
    from spikeport.nirfmt.load import to_loihi_net

    graph = build_graph([layer.quant() for layer in model.layers[:1]], input_shape=(64,), time_steps=4,
                        encoder="direct", n_classes=8, extra_meta={"readout": "membrane"})
    import nir

    nir.write(str(tmp_path / "g.nir"), graph)
    with pytest.raises(SpikeportError, match="readout 'membrane'.*can spike"):
        load_nir(tmp_path / "g.nir")
    assert to_loihi_net(graph).regression is False
