"""An imported run goes out like a trained one: ``spikeport export RUN --netx --onnx`` writes lava-dl's netx
file and the ONNX model from the run's model.nir. Independent references: lava-dl's own netx loader on Lava
(the netx backend) and onnxruntime, each against the emulator spike for spike."""
import nir
import numpy as np

from spikeport import pipeline
from spikeport.deploy import emulator
from spikeport.importer.run import import_graph
from spikeport.nirfmt.load import load_nir
from tests.conftest import cli
from tests.test_finetune import sinabs_style_cnn


def test_export_imported_run_to_netx_and_onnx(tmp_path):
    import onnxruntime as ort

    g = nir.read(str(sinabs_style_cnn(tmp_path / "cnn.nir")))
    g.nodes["fc"].weight = np.abs(g.nodes["fc"].weight) / 8  # integers that fit netx's 8-bit synapse at exponent 0 (the
    graph = tmp_path / "cnn8.nir"                     # import does not quantize for netx: it refuses, naming why)
    nir.write(str(graph), g)
    x = (np.random.default_rng(2).random((16, 8, 1, 8, 8)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = tmp_path / "run"
    import_graph(graph, dt=1.0, out=run, producer="sinabs", allow_approx=True, inputs=tmp_path / "x.npy")
    proc = cli("export", str(run), "--netx", "--onnx", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "model.net" in proc.stdout and "model.onnx" in proc.stdout and "model.nir" not in proc.stdout
    res = pipeline.parity(run, backend="netx,emulator", samples=8, min_agreement=0.0)
    assert res["spike_mismatches"] == 0 and res["spike_pairs"] == ["emulator-netx"]
    net = load_nir(run / "model.nir")
    xi = np.rint(np.swapaxes(x[:8], 0, 1)).astype(np.int64).reshape(8, 8, -1)
    sess = ort.InferenceSession(str(run / "model.onnx"))
    ours = [s.astype(bool) for s in sess.run(None, {sess.get_inputs()[0].name: xi})]
    emu = emulator.run(net, xi).spikes
    assert [int((a != b).sum()) for a, b in zip(ours, emu)] == [0, 0, 0] and all(s.any() for s in emu)
    bad = cli("export", str(run), "--out", str(tmp_path / "o.nir"), "-q")
    assert bad.returncode == 2 and "--out does not apply" in bad.stderr
