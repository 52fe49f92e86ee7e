"""An imported run goes out like a trained one: ``spikeport export RUN --netx --onnx`` writes lava-dl's netx
file and the ONNX model from the run's model.nir. Independent references: lava-dl's own netx loader on Lava
(the netx backend) and onnxruntime, each against the emulator spike for spike."""
import nir
import numpy as np
import pytest

from spikeport import pipeline
from spikeport.deploy import emulator
from spikeport.importer.run import import_graph
from spikeport.nirfmt.load import load_nir
from tests.conftest import cli
from tests.test_finetune import sinabs_style_cnn
from tests.test_import import SnnMLP, _export_snn, digits  # noqa: F401  (digits: the module's fixture)


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
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


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_import_for_netx_exports_and_runs_on_netx(digits, tmp_path):
    """``import --netx``: snnTorch's CUBA MLP (tiny_run's float weights) with Linear biases. The default import
    makes the biases exact lines, which netx refuses; --netx needs --allow-approx for them (voltage biases)
    and writes integers netx holds: export --netx, then lava-dl's netx on Lava == the emulator spike for spike."""
    import torch

    from spikeport.errors import SpikeportError

    net = SnnMLP(digits["weights"], digits["cfg"])
    for fc in (net.fc1, net.fc2):
        fc.bias = torch.nn.Parameter(torch.full((fc.out_features,), 0.05))
    path = _export_snn(net, tmp_path / "snn.nir")
    args = dict(dt=1e-4, producer="snntorch", inputs=digits["x"], labels=digits["y"])
    lava = import_graph(path, out=tmp_path / "lava", **args)
    assert lava["exact"] and lava["target"] == "lava"
    refused = cli("export", str(tmp_path / "lava"), "--netx", "-q")
    assert refused.returncode == 2 and "bias line" in refused.stderr
    with pytest.raises(SpikeportError, match="lava-dl's netx cannot carry"):
        import_graph(path, out=tmp_path / "n0", netx=True, **args)
    run = tmp_path / "netx"
    info = import_graph(path, out=run, netx=True, allow_approx=True, **args)
    assert info["target"] == "netx" and [layer["weight_exp"] for layer in info["layers"]] == [0, 0]
    assert len(info["approximations"]) == 2 and info["agreement"]["prediction_agreement"] >= 0.93
    print(f"snnTorch MLP with biases: integers vs snnTorch {lava['agreement']['prediction_agreement']:.4f} "
          f"(exact lines) vs {info['agreement']['prediction_agreement']:.4f} (--netx, voltage biases)")
    proc = cli("export", str(run), "--netx", "-q")
    assert proc.returncode == 0, proc.stderr
    res = pipeline.parity(run, backend="netx,emulator", samples=24, min_agreement=0.0)
    assert res["spike_mismatches"] == 0 and res["spike_pairs"] == ["emulator-netx"]
    plain = _export_snn(SnnMLP(digits["weights"], digits["cfg"]), tmp_path / "plain.nir")  # no biases: exact
    both = [import_graph(plain, out=tmp_path / f"plain{i}", netx=bool(i), **args)["agreement"] for i in (0, 1)]
    assert both[1]["prediction_agreement"] >= 0.97
    print(f"snnTorch MLP without biases: {both[0]['prediction_agreement']:.4f} (lava) vs "
          f"{both[1]['prediction_agreement']:.4f} (--netx, exact)")
    with pytest.raises(SpikeportError, match="imported with --netx"):
        from spikeport.importer.finetune import finetune_run

        finetune_run(run, epochs=1)
