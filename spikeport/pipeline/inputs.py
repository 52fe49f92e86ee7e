"""The inputs a stage runs: a dataset's test split encoded as the graph says, or ``.npy`` files.

Shapes: ``x_int`` [T, B, ...] Loihi integers (0/1 spikes or graded counts), time-major; labels [B]
int; ``x`` the samples before encoding ([B, ...] for a dataset, [T, B, ...] floats for ``.npy`` inputs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.data import encode, load_dataset
from spikeport.errors import SpikeportError
from spikeport.nirfmt.load import meta_value

INPUT_SEED = 12345  # encoder seed for evaluation inputs (matters for rate coding only)


def check_samples(samples: int | None) -> None:
    if samples is not None and samples < 1:
        raise SpikeportError(f"--samples must be at least 1, got {samples}")


def test_inputs(net: LoihiNet, data: str, data_dir: str | None, samples: int | None,
                seed: int = 0, before_encoding: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First ``samples`` test samples encoded as the graph says: (x_int [T,B,...], labels [B], x [B,...]).
    ``before_encoding(B)`` runs once the sample count is known, before the inputs are allocated (the
    memory budget check)."""
    check_samples(samples)
    ds = load_dataset(data, data_dir, seed=seed, n_bins=net.time_steps)
    x, y = ds.x_test[:samples] if samples else ds.x_test, ds.y_test[:samples] if samples else ds.y_test
    if before_encoding is not None:
        before_encoding(len(y))
    shape = tuple(int(s) for s in np.asarray(meta_value(net, "input_shape", ds.input_shape)).ravel())
    if int(np.prod(ds.input_shape)) != net.input_size:
        raise SpikeportError(f"dataset {data} has inputs of shape {ds.input_shape}, the graph expects {shape}")
    enc = encode(np.asarray(x), net.time_steps, str(meta_value(net, "encoder", "direct")), seed=INPUT_SEED)
    return enc, np.asarray(y), np.asarray(x)


def graph_inputs(net: LoihiNet, nir_path: str | Path, data: str | None, data_dir: str | None, samples: int | None,
                 seed: int = 0, inputs: str | Path | None = None, labels: str | Path | None = None,
                 before_encoding: Callable[[int], None] | None = None):
    """(x_int [T, B, ...], labels or None, x): ``--inputs`` / ``--labels`` .npy files ([N, T, ...]) or an
    imported run's stored inputs when given or the graph is imported, else the dataset's test split."""
    if inputs is not None or meta_value(net, "encoder") == "imported":
        from spikeport.importer.runio import run_inputs

        check_samples(samples)
        return run_inputs(net, nir_path, inputs, labels, samples)
    if not data:
        raise SpikeportError(f"{nir_path}: the graph names no dataset; pass --data or --inputs")
    return test_inputs(net, str(data), data_dir, samples, seed, before_encoding)
