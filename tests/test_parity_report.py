"""Parity reports only what it measured: an imported run without labels gives no accuracy, a lone
emulator run of an imported graph no spike count; parity_outputs.npz holds every side's per-sample
outputs, checked against independent runs; the netx backend and a netx-imported run are compared with
netx itself on Lava."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from spikeport import pipeline
from spikeport.deploy import emulator
from spikeport.importer.run import import_graph
from spikeport.nirfmt.load import load_nir
from tests.conftest import cli
from tests.test_import import SnnMLP, _export_snn, digits  # noqa: F401  (digits: a fixture)


def _imported(digits, tmp_path, labels: bool):  # noqa: F811
    path = _export_snn(SnnMLP(digits["weights"], digits["cfg"]), tmp_path / "snn.nir")
    run = tmp_path / "run"
    import_graph(path, dt=1e-4, out=run, producer="snntorch", inputs=digits["x"],
                 labels=digits["y"] if labels else None)
    return run


def test_imported_run_without_labels_reports_agreement_only(digits, tmp_path):  # noqa: F811
    run = _imported(digits, tmp_path, labels=False)
    res = pipeline.parity(run, backend="emulator", samples=60, min_agreement=0.0)  # the gate is not what is tested
    assert res["labels"] == "no labels: agreement only"
    assert res["float_accuracy"] is None and res["reference_accuracy"] is None and res["backend_accuracy"] is None
    assert res["spike_mismatches"] is None and "not measured" in res["spike_check"]  # the emulator is the reference
    assert res["prediction_agreement"] >= 0.95  # measured: float reference vs integers
    proc = cli("parity", str(run), "--backend", "emulator", "--samples", "60", "--min-agreement", "0")
    assert proc.returncode == 0, proc.stderr
    assert "no labels: agreement only" in proc.stdout and "not measured" in proc.stdout
    stored = json.loads((run / "parity.json").read_text())
    assert stored["backend_accuracy"] is None and stored["spike_mismatches"] is None


def test_parity_outputs_hold_every_side_per_sample(digits, tmp_path):  # noqa: F811
    """Each side's stored outputs equal an independent run: the emulator's output spike counts, and the
    float reference's readout recomputed with the importer's simulator."""
    from spikeport.importer.run import load_source, reference
    from spikeport.importer.runio import run_inputs

    run = _imported(digits, tmp_path, labels=True)
    pipeline.parity(run, backend="emulator", samples=40, min_agreement=0.0)  # the outputs are tested, not the gate
    with np.load(run / "parity_outputs.npz", allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    assert set(out["sides"]) == {"float reference", "emulator"}
    net = load_nir(run / "model.nir")
    x_int, y, x = run_inputs(net, run / "model.nir", samples=40)
    assert np.array_equal(out["emulator"], emulator.run(net, x_int).spikes[-1].sum(axis=0))
    fg, prod, dt, info = load_source(run)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(net.meta["source_layers"]).ravel()]
    _, _, readout = reference(fg, prod, dt, x, names, readout=True)
    assert np.allclose(out["float_reference"], readout) and np.array_equal(out["labels"], y)


def test_trained_run_outputs_match_the_checkpoint(tiny_run, tmp_path):
    from spikeport.train import checkpoint

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    pipeline.parity(run, backend="emulator", samples=30)
    with np.load(run / "parity_outputs.npz", allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    assert set(out["sides"]) == {"reference", "float", "emulator"}
    net = load_nir(run / "model.nir")
    x_int, y, _ = pipeline.test_inputs(net, "digits", None, 30)
    model, _, _ = checkpoint.load(run)
    with torch.no_grad():
        ints = model.forward_int(torch.from_numpy(x_int.astype(np.int64)))[-1].numpy()
    assert np.array_equal(out["reference"], ints.sum(axis=0)) and np.array_equal(out["emulator"], out["reference"])


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_netx_backend_and_netx_import_are_held_against_netx(tmp_path):
    """export --netx, then parity --backend netx,emulator; the model.net imported again (spikeport import
    MODEL.net) is parity-checked with netx itself as the reference."""
    from tests.netx_nets import digits_input, trained

    path, net = trained(tmp_path, "rate", encoder="rate", hidden=[32], time_steps=8, epochs=1)
    run = path.parent
    assert cli("export", str(run), "--netx").returncode == 0
    proc = cli("parity", str(run), "--backend", "netx,emulator", "--samples", "24")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((run / "parity.json").read_text())
    assert res["spike_pairs"] == ["reference-netx", "reference-emulator", "netx-emulator"]
    assert res["spike_mismatches"] == 0 and res["samples"] == 24
    x = digits_input(net, 16, "rate")
    np.save(tmp_path / "x.npy", np.swapaxes(x, 0, 1))
    back = tmp_path / "back"
    proc = cli("import", str(run / "model.net"), "--out", str(back), "--inputs", str(tmp_path / "x.npy"))
    assert proc.returncode == 0, proc.stderr
    proc = cli("parity", str(back), "--backend", "emulator")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((back / "parity.json").read_text())
    assert res["reference"].startswith("netx-on-Lava") and res["spike_mismatches"] == 0 and res["samples"] == 16
