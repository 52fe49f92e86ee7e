"""Trained conv and recurrent networks through the whole path: ``train`` -> ``export`` (NIR) -> load ->
emulator and Lava (supervised child process), against the checkpoint's Loihi-integer torch forward.
Every spike of every layer must agree. Fast: 100 samples through ``workflow.parity``; slow: 600."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeport import pipeline as workflow
from spikeport.data import encode, load_dataset
from spikeport.deploy import emulator
from spikeport.deploy.supervise import run_lava
from spikeport.export.nir_export import export_run
from spikeport.nirfmt.load import load_nir
from spikeport.train import checkpoint
from spikeport.train.config import TrainConfig
from spikeport.train.loop import train

CONFIGS = {  # digits, first 500 training samples: a few seconds to a few tens of seconds each
    "conv": dict(arch="conv", channels=[4, 8], hidden=[32], kernel=3, pool=2, time_steps=8, epochs=6, lr=5e-3),
    # target "lava": right-shifted sums (graded first layer, recurrent weights) on Lava's Dense
    "rfc": dict(arch="rfc", hidden=[48], time_steps=10, epochs=4, target="lava"),
    # binary input into Lava's Conv, AvgPool folded as a sum, KLIF's v floor, biases
    "conv-avg-klif": dict(arch="conv", method="klif", channels=[4], hidden=[], pool_mode="avg", time_steps=6,
                          epochs=3, bias=True, encoder="rate", lr=5e-3),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def run_dir(request, tmp_path_factory):
    run = tmp_path_factory.mktemp(f"run_{request.param}")
    train(TrainConfig(data="digits", limit=500, **CONFIGS[request.param]), run)
    export_run(run)
    return run


def test_trained_net_parity_on_100_samples(run_dir):
    res = workflow.parity(run_dir, backend="lava,emulator", samples=100)
    assert res["spike_mismatches"] == 0, res["first_divergence"]
    assert [c["spike_mismatches"] for c in res["comparisons"]] == [0, 0, 0]
    assert all(row["spikes_a"] > 0 for row in res["per_layer"])  # every layer spikes
    assert res["reference_accuracy"] > 0.2  # trained: twice chance after a few epochs on 500 samples


def _many_samples(run_dir, n: int):
    """n samples of digits (test then train split), encoded as the run's graph says."""
    model, cfg, _ = checkpoint.load(run_dir)
    ds = load_dataset("digits", seed=cfg.seed)
    x = np.concatenate([ds.x_test, ds.x_train])[:n]
    return model, encode(x, cfg.time_steps, cfg.encoder, seed=5)


@pytest.mark.slow
def test_trained_net_emulator_equals_lava_on_600_samples(run_dir):
    model, x_int = _many_samples(run_dir, 600)
    net = load_nir(run_dir / "model.nir")
    with torch.no_grad():
        ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
    emu = emulator.run(net, x_int).spikes
    lava = run_lava(net, x_int, record="all")
    assert x_int.shape[1] == 600
    for pop, r, e, lv in zip(net.populations, ref, emu, lava):
        assert e.any(), pop.name
        np.testing.assert_array_equal(e, lv, err_msg=f"{pop.name}: emulator vs Lava")
        np.testing.assert_array_equal(e, r, err_msg=f"{pop.name}: emulator vs torch integer forward")


def test_conv_graph_maps_to_lava_conv_and_folds_pools(run_dir):
    net = load_nir(run_dir / "model.nir")
    kinds = [(p.input.kind, p.input.pool is not None, p.recurrent is not None) for p in net.populations]
    _, cfg, _ = checkpoint.load(run_dir)
    if cfg.arch == "rfc":
        assert kinds == [("dense", False, True), ("dense", False, False)]
    elif len(cfg.channels) == 2:
        assert kinds == [("conv", False, False), ("conv", True, False), ("dense", True, False), ("dense", False, False)]
        assert net.populations[1].input.lava_process == "conv"  # pool folded into the kernel
    else:
        assert kinds == [("conv", False, False), ("dense", True, False)]
        assert net.populations[0].lif.floor_v  # klif
