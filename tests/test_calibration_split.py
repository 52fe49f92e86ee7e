"""`spikeport import --calibration`: the samples that calibrate the quantizer are never the samples scored.

Independent references: the split is checked by set arithmetic on the recorded indices and by the values
of the files written (each sample compared with the ``--inputs`` row it came from); the agreement
import.json reports is recomputed here from the float reference (``importer.simulate``) and the emulator
on the scored rows only; that calibration does not look at the scored samples is checked by replacing
every scored sample and finding the same integers.
"""
import json

import numpy as np
import pytest

from spikeport import pipeline
from spikeport.deploy import emulator
from spikeport.errors import SpikeportError
from spikeport.importer import runio
from spikeport.importer.conventions import PRODUCERS
from spikeport.importer.finetune import finetune_run
from spikeport.importer.run import import_graph
from spikeport.importer.simulate import predict, simulate
from spikeport.nirfmt.flat import load_graph
from spikeport.nirfmt.load import load_nir
from spikeport.report.markdown import summary_rows
from tests.conftest import cli
from tests.test_import_errors import DT, _graph, _write

N, T, N_IN = 40, 8, 6


@pytest.mark.parametrize("n, option, k", [(360, None, 180), (1000, None, 256), (3, None, 1), (2, None, 1),
                                          (40, 10, 10), (40, 0.25, 10), (40, 0.001, 1), (40, 39, 39)])
def test_split_sizes_and_disjoint(n, option, k):
    cal, scored = runio.calibration_split(n, option, "x.npy")
    assert len(cal) == k and len(scored) == n - k  # by hand: min(256, n // 2), the count, round(fraction * n)
    assert not set(cal) & set(scored) and sorted([*cal, *scored]) == list(range(n))
    again = runio.calibration_split(n, option, "x.npy")
    assert all(np.array_equal(a, b) for a, b in zip((cal, scored), again))  # seeded: the same every time


@pytest.mark.parametrize("n, option, words", [(1, None, "1 sample"), (40, 40, "leaves none to score"),
                                              (40, 0.999, "leaves none to score"), (40, 1.5, "whole number"),
                                              (40, 0, "whole number"), (40, -3, "whole number")])
def test_split_refuses_what_leaves_a_side_empty(n, option, words):
    with pytest.raises(SpikeportError, match=words):
        runio.calibration_split(n, option, "x.npy")


def _inputs(seed: int, density: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).random((N, T, N_IN)) < density).astype(np.float32)


def test_import_scores_only_what_it_did_not_calibrate_on(tmp_path):
    graph = _write(_graph(n_in=N_IN, n=5), tmp_path / "g.nir")
    x, y = _inputs(1), np.arange(N) % 5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    with pytest.raises(SpikeportError, match="--calibration need --inputs"):
        import_graph(graph, dt=DT, out=tmp_path / "none", producer="spikeport", time_steps=T, calibration=10)
    run = tmp_path / "run"
    info = import_graph(graph, dt=DT, out=run, producer="spikeport", inputs=tmp_path / "x.npy",
                        labels=tmp_path / "y.npy", calibration=0.25)
    s = info["samples"]
    cal, scored = s["calibration_indices"], s["scored_indices"]
    assert (len(cal), len(scored), s["count"]) == (10, 30, N) and not set(cal) & set(scored)
    assert np.array_equal(np.load(run / "inputs.npy"), x[scored])
    assert np.array_equal(np.load(run / "labels.npy"), y[scored])
    assert np.array_equal(np.load(run / "calibration_inputs.npy"), x[cal])
    g = load_graph(graph)
    xs = np.swapaxes(x[scored], 0, 1).astype(np.float64)
    theirs = predict(simulate(g, PRODUCERS["spikeport"], DT, xs))
    ours = emulator.run(load_nir(run / "model.nir"), xs.astype(np.int64)).output_counts().argmax(1)
    assert info["agreement"]["samples"] == 30
    assert info["agreement"]["prediction_agreement"] == pytest.approx(float(np.mean(ours == theirs)))
    # Calibration reads the calibration samples only: replace every scored sample (by denser ones, which
    # calibrate this graph to other integers), get the same integers and calibration mismatch rates.
    other = x.copy()
    other[scored] = _inputs(2, density=0.9)[scored]
    np.save(tmp_path / "x2.npy", other)
    info2 = import_graph(graph, dt=DT, out=tmp_path / "run2", producer="spikeport", inputs=tmp_path / "x2.npy",
                         calibration=0.25)
    keys = ("vth", "du", "dv", "weight_exp", "clip", "weight_rel_error", "clipped_fraction", "spike_mismatch_rate")
    assert [{k: row.get(k) for k in keys} for row in info2["layers"]] == [{k: row.get(k) for k in keys}
                                                                         for row in info["layers"]]
    # Fine-tuning holds out scored samples only; its training part holds every calibration sample.
    with pytest.raises(SpikeportError, match="holds out 36 of 40 samples, but only 30 were not calibrated on"):
        finetune_run(run, epochs=1, holdout=0.9)
    ft = finetune_run(run, epochs=1, holdout=0.25, seed=3)["samples"]
    held, trained = set(ft["heldout_indices"]), set(ft["train_indices"])
    assert len(held) == 10 and held <= set(scored) and set(cal) <= trained and held | trained == set(range(N))
    assert not held & trained


def test_cli_calibration_option_and_parity_record(tmp_path):
    graph = _write(_graph(n_in=N_IN, n=5), tmp_path / "g.nir")
    x = _inputs(1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "one.npy", x[:1])
    run = tmp_path / "run"
    base = ("import", str(graph), "--dt", str(DT), "--producer", "spikeport", "--out", str(run), "-q", "--inputs")
    proc = cli(*base, str(tmp_path / "one.npy"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "at least 2 samples" in proc.stderr
    proc = cli(*base, str(tmp_path / "x.npy"), "--calibration", "12")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((run / "import.json").read_text())
    assert len(info["samples"]["calibration_indices"]) == 12 and info["agreement"]["samples"] == 28
    pipeline.parity(run, backend="emulator", min_agreement=0.0)
    rec = json.loads((run / "parity.json").read_text())["scored_samples"]
    assert rec["scored"] == 28 and rec["calibrated_among_scored"] == 0
    assert rec["scored_indices"] == info["samples"]["scored_indices"]
    # The whole --inputs file handed to parity holds the 12 calibration samples: parity finds them by value.
    res = pipeline.parity(run, backend="emulator", inputs=tmp_path / "x.npy", min_agreement=0.0)
    assert res["scored_samples"]["calibrated_among_scored"] == 12 and res["scored_samples"]["scored"] == N
    assert ("scored samples", f"{N} ({tmp_path / 'x.npy'}); 12 calibrated on (not a held-out figure)") \
        in summary_rows({"parity": res})
