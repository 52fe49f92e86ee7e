"""ONNX export: a time-unrolled integer model that onnxruntime runs to the same spikes as the quantized
PyTorch reference (``SpikingMLP.forward_int``), which Lava and the emulator match elsewhere."""
import numpy as np
import torch

from spikeport import pipeline as workflow
from spikeport.deploy import emulator
from spikeport.export.onnx_export import build_model, export_onnx
from spikeport.nirfmt.load import load_nir
from tests.conftest import cli


def _ort(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_equals_forward_int_on_all_test_samples(tiny_run, tmp_path):
    import onnx

    from spikeport.train import checkpoint

    path = export_onnx(tiny_run, tmp_path / "model.onnx")
    model_proto = onnx.load(str(path))
    onnx.checker.check_model(model_proto, full_check=True)
    net = load_nir(tiny_run / "model.nir")
    x_int, _, _ = workflow.test_inputs(net, "digits", None, None)
    assert x_int.shape[1] >= 100
    model, _, _ = checkpoint.load(tiny_run)
    ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
    outs = _ort(path).run(None, {"x": x_int.reshape(x_int.shape[0], x_int.shape[1], -1).astype(np.int64)})
    assert [o.name for o in model_proto.graph.output] == [f"spikes_{i}" for i in range(len(ref))]
    for r, o in zip(ref, outs):
        assert o.dtype == np.bool_ and o.shape == r.shape
        assert (o != r).sum() == 0
    assert all(r.sum() > 0 for r in ref)
    small = _ort(path).run(None, {"x": x_int[:, :3].reshape(x_int.shape[0], 3, -1).astype(np.int64)})
    assert (small[-1] == ref[-1][:, :3]).all()  # the batch dimension is free


def test_cli_export_onnx(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    proc = cli("export", str(run), "--onnx")
    assert proc.returncode == 0, proc.stderr
    assert (run / "model.onnx").is_file() and "model.onnx" in proc.stdout


def test_onnx_recurrent_wraps_and_shifts_equal_emulator():
    """A hand-made recurrent net with right and left weight exponents, a bias, KLIF's floor and huge
    inputs that wrap the current: ONNX equals the emulator (= Lava) step for step."""
    from spikeport.core import loihi
    from spikeport.core.net import Connection, LoihiNet, Population

    rng = np.random.default_rng(0)
    pops = [Population("a", 20, loihi.LIFParams(du=1000, dv=300, vth=400, bias_mant=rng.integers(-50, 50, 20),
                                                bias_exp=3), Connection("w0", rng.integers(-127, 128, (20, 30)).astype(np.int8), -2),
                       Connection("r0", rng.integers(-127, 128, (20, 20)).astype(np.int8), 3)),
            Population("b", 7, loihi.LIFParams(du=4095, dv=0, vth=100, floor_v=True),
                       Connection("w1", rng.integers(-127, 128, (7, 20)).astype(np.int8), 4))]
    net = LoihiNet((30,), pops, 9, True)
    x = rng.integers(0, 256, (9, 40, 30))
    outs = _ort_model(build_model(net).SerializeToString()).run(None, {"x": x.astype(np.int64)})
    ref = emulator.run(net, x).spikes
    for r, o in zip(ref, outs):
        assert (o != r).sum() == 0
    assert ref[0].any() and ref[1].any() and not ref[0].all()


def _ort_model(data: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_onnx_conv_and_pool_equal_emulator():
    """Conv after a tiling sum pool (Lava Conv: no exponent, 24-bit wrap) and a conv with an exponent
    (unrolled Sparse on Lava), then a pool-only connection: ONNX equals the emulator."""
    from spikeport.core import loihi
    from spikeport.core.linear import Pool2d
    from spikeport.core.net import Connection, LoihiNet, Population

    rng = np.random.default_rng(1)
    c1 = Connection("c1", rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8), 0, kind="conv", in_shape=(2, 8, 8),
                    pool=Pool2d((2, 2), (2, 2)), padding=(1, 1))
    c2 = Connection("c2", rng.integers(-127, 128, (3, 4, 3, 3)).astype(np.int8), -1, kind="conv", in_shape=(4, 4, 4))
    c3 = Connection("p3", np.zeros((0, 0), np.int8), 0, kind="pool", in_shape=(3, 2, 2), pool=Pool2d((2, 2), (2, 2)))
    lif = loihi.LIFParams(du=2047, dv=400, vth=30)
    pops = [Population("a", 64, lif, c1, shape=(4, 4, 4)), Population("b", 12, lif, c2, shape=(3, 2, 2)),
            Population("c", 3, loihi.LIFParams(du=4095, dv=0, vth=0), c3, shape=(3, 1, 1))]
    net = LoihiNet((2, 8, 8), pops, 6, False)
    x = (rng.random((6, 25, 128)) < 0.4).astype(np.int64)
    outs = _ort_model(build_model(net).SerializeToString()).run(None, {"x": x})
    ref = emulator.run(net, x).spikes
    for r, o in zip(ref, outs):
        assert (o != r).sum() == 0
    assert all(r.any() for r in ref)
