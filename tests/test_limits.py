"""Budgets and readers that refuse before allocating: memory / step budgets with the estimate, chunked
parity equal to one run, weights that do not fit Loihi's 8 bits, hostile HDF5 / .npy / gzip files."""
from __future__ import annotations

import gzip
import json
import shutil
import time

import h5py
import numpy as np
import pytest
import torch

from spikeport import pipeline as workflow
from spikeport.core import quant
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.files import fileio
from spikeport.nirfmt import guard as nir_guard
from spikeport.pipeline import limits
from tests.conftest import cli
from tests.test_cli import one_line_error


def test_over_budget_network_is_refused_with_the_estimate(tiny_run):
    msg = one_line_error(cli("deploy", str(tiny_run / "model.nir"), "--backend", "emulator", "--max-memory-gb", "1e-6"))
    assert "estimated 567 KiB" in msg and "--max-memory-gb" in msg and "64-64-10" in msg
    msg = one_line_error(cli("parity", str(tiny_run), "--backend", "lava", "--max-steps", "100"))
    assert "step budget 100" in msg


def test_budget_from_environment_and_validation(monkeypatch):
    monkeypatch.setenv(limits.MEMORY_ENV, "2.5")
    assert limits.Budget.make().max_memory_bytes == int(2.5 * limits.GIB)
    monkeypatch.setenv(limits.MEMORY_ENV, "lots")
    with pytest.raises(SpikeportError, match=limits.MEMORY_ENV):
        limits.Budget.make()
    with pytest.raises(SpikeportError, match="--max-memory-gb"):
        limits.Budget.make(max_memory_gb=-1)


def test_chunk_shrinks_to_fit_and_estimates_grow_with_samples(tiny_run):
    from spikeport.nirfmt.load import load_nir

    net = load_nir(tiny_run / "model.nir")
    assert limits.lava_bytes(net, 2000) > limits.lava_bytes(net, 10) > 0
    big = limits.Budget.make(max_memory_gb=64)
    assert limits.plan_chunk(net, 5000, ["reference", "emulator"], big) == limits.CHUNK_CAP["emulator"]
    small = limits.Budget(max_memory_bytes=limits.input_bytes(net, 5000) + limits.reference_bytes(net, 40))
    chunk = limits.plan_chunk(net, 5000, ["reference", "emulator"], small)
    assert chunk >= 1 and chunk <= 40


def _parity_json(run, out):
    res = json.loads(out.read_text())
    for key in ("chunk_samples", "samples_per_s"):
        res.pop(key)
    for c in res["comparisons"]:
        c.pop("samples_per_s", None)
    with np.load(run / "parity_spikes.npz") as z:
        res["spikes"] = {k: z[k].tolist() for k in z.files}
    return res


def test_chunked_parity_equals_one_run(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "tampered"
    shutil.copytree(tiny_run, run)
    with h5py.File(run / "model.nir", "r+") as f:  # a divergence, so first_divergence is compared too
        ds = f["node/nodes/lif0/metadata/loihi/vth"]
        ds[()] = int(ds[()]) - 3
    results = []
    for cap in (1000, 23):
        monkeypatch.setitem(limits.CHUNK_CAP, "emulator", cap)
        monkeypatch.setitem(limits.CHUNK_CAP, "reference", cap)
        with pytest.raises(ParityFailure):
            workflow.parity(run, backend="emulator", samples=150, out=run / "parity.json")
        results.append(_parity_json(run, run / "parity.json"))
    assert results[0] == results[1] and results[0]["spike_mismatches"] > 0


def test_export_reports_weights_that_do_not_fit_8_bits(tiny_run, tmp_path, monkeypatch):
    """A quantizer whose scale is too small would clip: export names layer, count and worst value."""
    from spikeport.core import quant
    from spikeport.export.nir_export import export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    real = quant.weight_scale
    monkeypatch.setattr(quant, "weight_scale", lambda w: real(w) / 2)
    with pytest.raises(SpikeportError, match=r"layer \d weights: \d+ weights \(worst -?2\d\d"):
        export_run(run)


def test_weight_fit_counts_and_worst():
    w = np.array([[1.0, -3.0], [0.5, 2.6]])
    assert quant.weight_fit("fc", w, 0.01) == {"layer": "fc", "count": 2, "worst": -300, "limit": [-127, 127]}
    assert quant.weight_fit("fc", w, 1.0) is None


def test_hostile_hdf5_is_refused_before_reading(tiny_run, tmp_path):
    cases = {}
    for name in ("huge", "external", "soft", "deep"):
        path = tmp_path / f"{name}.nir"
        shutil.copyfile(tiny_run / "model.nir", path)
        with h5py.File(path, "r+") as f:
            if name == "huge":  # 8 TiB declared, a few bytes stored
                del f["node/nodes/fc0/weight"]
                f.create_dataset("node/nodes/fc0/weight", shape=(2**20, 2**20), dtype="f8", chunks=(1024, 1024))
            elif name == "external":
                f["node/nodes/fc0/evil"] = h5py.ExternalLink("/etc/hosts.h5", "/")
            elif name == "soft":
                f["node/nodes/fc0/loop"] = h5py.SoftLink("/node")
            else:
                g = f["node"]
                for i in range(nir_guard.MAX_DEPTH + 2):
                    g = g.create_group(f"d{i}")
        cases[name] = path
    for name, path in cases.items():
        t0 = time.monotonic()
        with pytest.raises(SpikeportError) as info:
            workflow.deploy(path, data="digits", backend="emulator", samples=2)
        assert time.monotonic() - t0 < 5, name
        assert str(path) in str(info.value)


def test_npy_header_and_gzip_bomb(tmp_path, monkeypatch):
    from spikeport.data import datasets

    npy = tmp_path / "x.npy"
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 3), }"
    npy.write_bytes(header.ljust(127, b" ") + b"\n")
    with pytest.raises(SpikeportError, match="header declares"):
        fileio.check_npy(npy)
    np.save(npy, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(SpikeportError, match="Python objects"):
        fileio.check_npy(npy)
    monkeypatch.setattr(datasets, "MAX_FILE_BYTES", 1 << 20)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(bytes(4 << 20))
    with pytest.raises(SpikeportError, match="more than"):
        datasets._read_bytes(bomb)


def test_checkpoint_pair_from_two_runs_is_refused(tiny_run, tmp_path):
    """config.json records the weights' SHA-256: weights from another run (same shapes) are refused."""
    from safetensors.torch import load_file, save_file

    from spikeport.train import checkpoint

    run = tmp_path / "mixed"
    shutil.copytree(tiny_run, run)
    assert "weights_sha256" in json.loads((run / "config.json").read_text()), "train must record the weights' digest"
    w = load_file(str(run / "model.safetensors"))
    save_file({k: v + 1e-3 if torch.is_floating_point(v) else v for k, v in w.items()}, str(run / "model.safetensors"))
    with pytest.raises(SpikeportError, match="weights_sha256"):
        checkpoint.load(run)
