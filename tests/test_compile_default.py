"""``TrainConfig.compile`` ("auto" | true | false): which path a run takes, that the compiled fused op does
not recompile across batch sizes, layers and QAT's changing constants, and (slow) that compiled training
follows the eager loss trajectory and exports a run whose deployment parity is exact."""
import json
import warnings

import pytest
import torch

from spikeport.errors import SpikeportError
from spikeport.train import checkpoint, compiling, fused
from spikeport.train.config import TrainConfig


def _conv_cfg(**kw) -> TrainConfig:
    return TrainConfig(data="digits", arch="conv", channels=[4, 8], hidden=[], time_steps=4, **kw)


def test_auto_compiles_a_long_run_and_not_a_tiny_one(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # an empty cache: the cold compile cost
    monkeypatch.setattr(compiling, "compiler_problem", lambda device: None)
    cfg = _conv_cfg(batch_size=128)
    model = checkpoint.build_model(cfg, 64, 10, (1, 8, 8))
    elements = compiling.fused_elements(model, cfg.time_steps, cfg.batch_size)
    assert elements == (4 * 64 + 8 * 16 + 10) * 4 * 128  # conv 4c 8x8, 8c 4x4 (after the pool), dense 10
    rfc = TrainConfig(data="digits", arch="rfc", hidden=[20], time_steps=4)  # the recurrent layer loops itself
    assert compiling.fused_elements(checkpoint.build_model(rfc, 64, 10), 4, 128) == 10 * 4 * 128
    tiny = compiling.choose("auto", steps=3, elements=elements)
    long = compiling.choose("auto", steps=10**7, elements=elements)
    assert not tiny.compiled and "eager" in tiny.reason
    assert long.compiled and "cold" in long.reason
    assert compiling.choose(False, steps=10**7, elements=elements).compiled is False
    # a warm cache (an earlier compiled run of this torch) lowers the bar by COMPILE_COLD_S / COMPILE_WARM_S
    steps = int(compiling.COMPILE_WARM_S / (elements * compiling.SAVED_NS_PER_ELEMENT * 1e-9)) + 1
    sig = compiling.signature(cfg)
    assert not compiling.choose("auto", steps=steps, elements=elements, sig=sig).compiled
    compiling.mark_warm(sig)
    assert compiling.choose("auto", steps=steps, elements=elements, sig=sig).compiled
    assert not compiling.choose("auto", steps=steps, elements=elements, sig="T=99,syn=True,bias=False").compiled


def test_no_compiler_falls_back_to_eager_with_one_warning(monkeypatch):
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    monkeypatch.setenv("CXX", "no-such-cxx")
    for setting in (True, "auto"):  # asked for, or a run long enough that auto would compile
        with pytest.warns(RuntimeWarning, match="no C.. compiler") as got:
            choice = compiling.choose(setting, steps=10**7, elements=10**6)
        assert not choice.compiled and "no C++ compiler" in choice.reason
        assert len(got) == 1 and "\n" not in str(got[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tiny run would not compile anyway: nothing to warn about
        assert not compiling.choose("auto", steps=3, elements=10**3).compiled


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiling.cache_dir() == tmp_path / "spikeport" / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compiling.cache_dir() == tmp_path / "mine"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what torch writes there itself
    assert compiling.cache_dir() == tmp_path / "spikeport" / "inductor"


def test_compile_setting_is_validated(tmp_path):
    assert TrainConfig().compile == "auto"
    assert TrainConfig(compile=False).compile is False
    bad = tmp_path / "c.toml"
    bad.write_text('[train]\ncompile = "yes"\n')
    with pytest.raises(SpikeportError, match="compile") as err:
        TrainConfig.from_toml(bad)
    assert "\n" not in str(err.value)


def test_tiny_run_trains_eagerly_and_says_so(tmp_path):
    from spikeport.train.loop import train

    metrics = train(TrainConfig(epochs=1, limit=64, hidden=[16], time_steps=4), tmp_path)
    assert metrics["train_path"] == "eager" and metrics["train_path_reason"].startswith("auto:")
    assert metrics["first_step_seconds"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["train_path"] == "eager"


def test_one_graph_per_structure_across_batches_layers_and_constants(monkeypatch):
    """The guards of the compiled twins (dynamo, recording backend): a second batch size (the last partial
    batch), other layer widths and other decays / thresholds (QAT's change every step) reuse the graphs."""
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    monkeypatch.setattr(fused, "_compiled", lambda c=fused._Compiled(backend=recording): c)

    def step(batch, width, theta, beta):
        cur = torch.randn(5, batch, width, requires_grad=True)
        bias = torch.zeros(width, requires_grad=True)
        s = fused.cuba_lif_multistep(cur, beta, 0.9, theta, bias=bias, compile=True)
        s.sum(0).sum().backward()  # the output layer's gradient: a stride-0 view over time
        (fused.cuba_lif_multistep(cur, beta, 0.9, theta, bias=bias, compile=True) * 2).sum().backward()

    warnings.simplefilter("error", RuntimeWarning)  # a compile failure (eager fallback) fails the test
    step(8, 12, 1.0, 0.5)
    first = len(graphs)
    assert first == 2  # forward, backward (a stride-0 gradient is made contiguous: no graph of its own)
    for batch, width, theta, beta in [(5, 12, 1.0, 0.5), (8, 30, 0.7, 0.25), (3, 7, 1.3, 0.4)]:
        step(batch, width, theta, beta)
    assert len(graphs) == first and not fused._compiled().broken
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_training_follows_eager_and_deploys_exactly(tmp_path, monkeypatch):
    """Inductor: the same loss trajectory as eager (float tolerance) and a run whose emulator parity is exact."""
    from spikeport import pipeline
    from spikeport.export.nir_export import export_run
    from spikeport.train.loop import train

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    fused._compiled.cache_clear()
    torch._dynamo.reset()
    runs = {}
    for setting in (False, True):
        cfg = _conv_cfg(epochs=2, limit=200, batch_size=48, compile=setting, encoder="rate")
        runs[setting] = train(cfg, tmp_path / str(setting))
    assert runs[True]["train_path"] == "compiled" and runs[False]["train_path"] == "eager"
    eager = [h["loss"] for h in runs[False]["history"]]
    compiled = [h["loss"] for h in runs[True]["history"]]
    assert compiled == pytest.approx(eager, rel=1e-4)
    model = checkpoint.load(tmp_path / "True")[0]  # same weights, both paths: bit-identical spikes on CPU
    x = torch.bernoulli(torch.full((4, 32, 64), 0.3), generator=torch.Generator().manual_seed(1))
    outs = {}
    for flag in (False, True):
        compiling.apply(model, flag)
        outs[flag] = model(x, qat=True)
    assert all(torch.equal(a, b) for a, b in zip(outs[False], outs[True]))
    export_run(tmp_path / "True")
    res = pipeline.parity(tmp_path / "True", backend="emulator", samples=64)
    assert res["spike_mismatches"] == 0
    assert res["prediction_agreement"] == 1.0


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_cli_no_compile_flag(tmp_path):
    from tests.conftest import cli

    proc = cli("train", "--data", "digits", "--epochs", "1", "--limit", "64", "--hidden", "16", "-T", "4",
               "--no-compile", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (metrics["train_path"], metrics["train_path_reason"]) == ("eager", "compile = false")
    assert "training path" in proc.stdout and json.loads((tmp_path / "r" / "config.json").read_text())


def test_resume_accepts_another_compile_setting(tmp_path):
    """``compile`` changes speed, not results: a run resumes under another setting (or from a checkpoint
    saved before the field existed)."""
    from spikeport.train.loop import train

    cfg = dict(epochs=1, limit=64, hidden=[16], time_steps=4)
    train(TrainConfig(compile=False, **cfg), tmp_path)
    metrics = train(TrainConfig(compile="auto", **cfg), tmp_path, resume=True)
    assert metrics["resumed_from_epoch"] == 1
