"""Xylo runs end to end: a run trained with target = "xylo-audio2" and an imported Rockpool graph, each exported
to model.xylo.json and held spike for spike (and state for state) against SynSense's xylosim; the chip limits
refused before anything runs (exit 2, one line each)."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from spikeport.core import xylo
from spikeport.errors import SpikeportError
from spikeport.export.xylo_export import export_xylo
from spikeport.importer.xylo_import import import_xylo
from spikeport.nirfmt import xylo_spec
from spikeport.pipeline import xylo_energy_stage, xylo_parity


def test_trained_xylo_run_is_exact_on_xylosim(tmp_path):
    """A briefly trained digits-rows net: its Xylo-integer forward, the emulator and xylosim agree in every spike
    count, and the two backends in every state, on 40 test samples; energy counts and resources are written."""
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    run = tmp_path / "xrun"
    train(TrainConfig(data="digits-rows", encoder="events", arch="rfc", hidden=[16], time_steps=10, epochs=1,
                      limit=48, target="xylo-audio2", theta=2.0), run)
    net = xylo_spec.read(export_xylo(run))
    assert net.describe() == "8-16r-8" and net.violations() == []
    res = xylo_parity.parity(run, samples=40)
    assert res["passed"] and res["spike_mismatches"] == 0 and res["samples"] == 40
    assert res["spike_pairs"] == ["reference-xylo", "reference-emulator", "xylo-emulator"]
    assert res["state_mismatches"] == {k: 0 for k in ("vmem", "isyn", "isyn2", "vmem_out", "isyn_out")}
    assert sum(r["spikes_a"] for r in res["per_layer"]) > 0  # the net spikes: the comparison compares something
    e = xylo_energy_stage.energy(run, samples=20)
    rows = {r["resource"]: r for r in e["resources"]}
    assert rows["hidden neurons"] == {"resource": "hidden neurons", "used": 16, "limit": xylo.HIDDEN_MAX}
    assert e["synops"] > 0 and e["energy"]["status"] == "estimate"


def test_limits_refused_before_running(tmp_path):
    """17 inputs and a decay of 16: xylosim would run them; spikeport exits 2 naming both, one line."""
    rng = np.random.default_rng(0)
    from spikeport.core.xylo_net import XyloNet

    net = XyloNet(weights_in=rng.integers(-5, 5, (17, 4, 2)), weights_rec=np.zeros((4, 4, 2)),
                  weights_out=np.ones((4, 2)), dash_mem=16, dash_syn=1, dash_syn_2=1, dash_mem_out=1, dash_syn_out=1,
                  threshold=100, threshold_out=100, bias=0, bias_out=0, time_steps=5)
    run = tmp_path / "bad"
    xylo_spec.write(run / "model.xylo.json", net, {"readout": "spike_count"})
    with pytest.raises(SpikeportError) as err:  # the CLI's exit 2 (tests/test_cli.py: SpikeportError -> 2)
        xylo_parity.parity(run)
    line = str(err.value)
    assert "\n" not in line and "17 input channels: Xylo Audio 2 has at most 16" in line
    assert "dash_mem reaches 16..16: Xylo's decays (dash) are 0..15" in line
    assert not (run / "parity.json").exists()  # refused before anything ran


def _rockpool_graph(path, n_in=8, hidden=24, n_out=4):
    """A Rockpool LIFTorch net whose leaks are Xylo's bit-shift factors (tau = -dt / ln(1 - 2**-dash))."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    dt = 1e-3
    tau = lambda dash: -dt / np.log(1.0 - 2.0 ** -dash)  # noqa: E731
    torch.manual_seed(0)
    net = Sequential(LinearTorch((n_in, hidden)), LIFTorch(hidden, tau_mem=tau(4), tau_syn=tau(1), dt=dt),
                     LinearTorch((hidden, n_out)), LIFTorch(n_out, tau_mem=tau(3), tau_syn=tau(1), dt=dt))
    nir.write(str(path), to_nir(net))
    return dt


def test_rockpool_graph_on_xylo(tmp_path):
    """A Rockpool graph (multi-spike, subtractive, '>=', bit-shift leaks): only its multi-spike output layer needs
    --allow-approx; imported, 200 samples run spike for spike and state for state on xylosim and the emulator."""
    dt = _rockpool_graph(tmp_path / "rock.nir")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", (rng.integers(0, 4, (200, 30, 8)) * (rng.random((200, 30, 8)) < 0.4)).astype(np.float32))
    kw = dict(dt=dt, producer="rockpool", inputs=tmp_path / "x.npy")
    with pytest.raises(SpikeportError, match="output neurons emit several spikes per step"):
        import_xylo(tmp_path / "rock.nir", out=tmp_path / "refused", **kw)
    info = import_xylo(tmp_path / "rock.nir", out=tmp_path / "run", allow_approx=True, **kw)
    assert [a["change"] for a in info["approximations"]] == ["at most one (Xylo's output neurons)"]
    assert [(r["dash_syn"], r["dash_mem"]) for r in info["layers"]] == [(1, 4), (1, 3)]
    res = xylo_parity.parity(tmp_path / "run", backend="xylo,emulator", min_agreement=0.0)
    assert res["passed"] and res["samples"] == 200 and res["spike_pairs"] == ["xylo-emulator"]
    assert res["spike_mismatches"] == 0 and not any(res["state_mismatches"].values())
    assert json.loads((tmp_path / "run" / "import.json").read_text())["target"] == "xylo-audio2"


@pytest.mark.slow
@pytest.mark.timeout(4800)  # two trainings of 60 epochs: about 2 min each on a quiet 2-core machine, 25 min at load 15
def test_loihi_vs_xylo_side_by_side(tmp_path):
    """examples/xylo_digits_rows.toml and its Loihi twin, trained in full: Xylo float vs Xylo-integer accuracy
    within 1 point, every test sample (289 >= 200) exact on xylosim and the emulator (spikes and states) and on
    Lava, and report.html of the Xylo run shows both chips side by side."""
    from pathlib import Path

    from spikeport.export.nir_export import export_run
    from spikeport.pipeline import energy, parity
    from spikeport.report import html
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    root = Path(__file__).resolve().parent.parent / "examples"
    runs = {}
    for chip in ("xylo", "loihi"):
        runs[chip] = tmp_path / f"{chip}_rows"
        metrics = train(TrainConfig.from_toml(root / f"{chip}_digits_rows.toml"), runs[chip])
        if chip == "xylo":
            assert abs(metrics["float_accuracy"] - metrics["quantized_accuracy"]) <= 0.01
            assert metrics["quantized_accuracy"] >= 0.9
    export_xylo(runs["xylo"])
    res = xylo_parity.parity(runs["xylo"])
    assert res["samples"] == 289 and res["passed"] and res["spike_mismatches"] == 0
    assert not any(res["state_mismatches"].values())
    xylo_energy_stage.energy(runs["xylo"])
    export_run(runs["loihi"])
    assert parity(runs["loihi"], backend="lava,emulator")["spike_mismatches"] == 0
    energy(runs["loihi"])
    page = html.render(runs["xylo"])
    chips = page[page.index('<section id="chips">'):]
    chips = chips[:chips.index("</section>")]
    assert "loihi_rows" in chips and "xylo_rows" in chips and "accuracy on the chip" in chips
    assert "Bos &amp; Muir" in chips and "Davies et al." in chips


def test_snntorch_recurrent_graph_on_xylo(tmp_path):
    """An snnTorch RSynaptic net with subtractive reset and bit-shift leaks (alpha 0.5, beta 0.875): the decays,
    the reset, the '>' threshold and the recurrence are exact on Xylo; the one listed change is the hidden
    neurons' several spikes per step (snnTorch: one)."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.fc1, self.fc2 = torch.nn.Linear(8, 16, bias=False), torch.nn.Linear(16, 4, bias=False)
            self.rlif = snn.RSynaptic(alpha=torch.full((16,), 0.5), beta=torch.full((16,), 0.875),
                                      threshold=torch.full((16,), 1.0), linear_features=16, reset_delay=False)
            self.rlif.recurrent.bias.data.zero_()  # (a bias would be a constant current: listed on Xylo)
            self.lif2 = snn.Synaptic(alpha=torch.full((4,), 0.5), beta=torch.full((4,), 0.875),
                                     threshold=torch.full((4,), 1.0), reset_delay=False)

        def forward(self, x):  # one step from rest: what export_to_nir traces
            z = torch.zeros(x.shape[0], 16)
            spk, _, _ = self.rlif(self.fc1(x), z, z.clone(), z.clone())
            z2 = torch.zeros(x.shape[0], 4)
            return self.lif2(self.fc2(spk), z2, z2.clone())[0]

    path = tmp_path / "snn.nir"
    nir.write(str(path), export_to_nir(Net(), torch.zeros(1, 8), ignore_dims=[0]))
    rng = np.random.default_rng(3)
    np.save(tmp_path / "x.npy", (rng.integers(0, 3, (60, 20, 8)) * (rng.random((60, 20, 8)) < 0.5)).astype(np.float32))
    info = import_xylo(path, dt=1e-4, out=tmp_path / "run", producer="snntorch", reset="subtract",
                       reset_timing="same-step", allow_approx=True, inputs=tmp_path / "x.npy")
    assert [a["issue"] for a in info["approximations"]] == ["snntorch emits one spike per step"]
    assert info["network"] == "8-16r-4" and [(r["dash_syn"], r["dash_mem"]) for r in info["layers"]] == [(1, 3), (1, 3)]
    assert any("'>' threshold applied as Xylo's '>='" in n for n in info["notes"])
    res = xylo_parity.parity(tmp_path / "run", min_agreement=0.0)
    assert res["passed"] and res["spike_mismatches"] == 0 and not any(res["state_mismatches"].values())
