"""Inputs and labels of imported runs: ``.npy`` files read without pickle and checked.

Inputs are ``[N, T, *input_shape]`` (N samples, each time-major: T steps of the graph's input),
floats or integers, finite and non-negative; labels ``[N]`` integers. Internally spikeport runs
time-major batches ``[T, N, ...]``. An imported run folder keeps the samples its import scored as
``inputs.npy`` / ``labels.npy`` and those it calibrated on as ``calibration_inputs.npy`` /
``calibration_labels.npy`` (:func:`calibration_split`: never the same sample); its graph metadata says
how floats become Loihi integers (``input_unit``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

INPUTS, LABELS, IMPORT_JSON, SOURCE = runfolder.INPUTS, runfolder.LABELS, runfolder.IMPORT, runfolder.SOURCE
MAX_BYTES = 4 << 30
DEFAULT_CALIBRATION = 256  # samples that calibrate by default (at most half of them: the rest are scored)
SPLIT_SEED = 0  # seeds the choice of the calibration samples
SPLIT_RULE = ("calibration: --calibration N samples or fraction F of --inputs (default min(256, N // 2)), chosen "
              f"by a permutation seeded {SPLIT_SEED}; scored: all the others")


def calibration_split(n: int, calibration: float | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(calibration indices, scored indices) into ``n`` samples: disjoint, sorted, together all of them.
    ``calibration``: None -> min(DEFAULT_CALIBRATION, n // 2); a whole number >= 1 -> that many; a
    fraction in (0, 1) -> round(fraction * n), at least 1. Chosen by a permutation seeded SPLIT_SEED.
    SpikeportError (one line) when fewer than one sample would be left for either side."""
    if n < 2:
        raise SpikeportError(f"{where}: {n} sample; calibration and scoring need one each, never the same: "
                             "pass at least 2 samples")
    if calibration is None:
        k = min(DEFAULT_CALIBRATION, n // 2)
    else:
        c = float(calibration)
        if not np.isfinite(c) or c <= 0 or (c >= 1 and c != int(c)):
            raise SpikeportError(f"--calibration must be a whole number of samples (>= 1) or a fraction in (0, 1), "
                                 f"got {calibration!r}")
        k = max(1, int(round(c * n))) if c < 1 else int(c)
        if k >= n:
            raise SpikeportError(f"{where}: --calibration {c:g} takes {k} of the {n} samples and leaves none to "
                                 "score; pass a smaller count or fraction")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def split_record(inputs: str | Path, n: int, cal: np.ndarray, scored: np.ndarray) -> dict:
    """import.json's ``samples``: which samples of the ``--inputs`` file did what (indices into it)."""
    return {"inputs": str(inputs), "count": int(n), "rule": SPLIT_RULE,
            "calibration_indices": [int(i) for i in cal], "scored_indices": [int(i) for i in scored]}


def sample_keys(x: np.ndarray) -> list[bytes]:
    """One digest per sample of ``x`` [T, N, ...] (its values as float64): equal samples, equal keys."""
    per_sample = np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float64), 1, 0))
    return [hashlib.blake2b(s.tobytes(), digest_size=16).digest() for s in per_sample]


def shared_samples(x: np.ndarray, others: np.ndarray) -> int:
    """How many samples of ``x`` [T, N, ...] equal a sample of ``others`` [T, M, ...] (same input shape)."""
    seen = set(sample_keys(others))
    return sum(k in seen for k in sample_keys(x))


def load_npy(path: str | Path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    if path.stat().st_size > MAX_BYTES:
        raise SpikeportError(f"{path}: larger than {MAX_BYTES} bytes")
    fileio.refuse_pickle(path)
    fileio.check_npy(path)  # header vs file size, no object arrays: nothing is allocated for a lying header
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises many types on corrupt headers and data
        raise SpikeportError(f"{path}: not a valid .npy array for {what} ({type(err).__name__}: "
                             f"{str(err)[:120]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise SpikeportError(f"{path}: {what} must be a numeric array, got dtype {getattr(arr, 'dtype', '?')}")
    return arr


def load_inputs(inputs: str | Path, labels: str | Path | None, input_shape: tuple[int, ...],
                time_steps: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x [T, N, *input_shape] float64, labels [N] int64 or None) from .npy files."""
    x = load_npy(inputs, "inputs")
    n_in = int(np.prod(input_shape))
    if x.ndim < 3 or int(np.prod(x.shape[2:])) != n_in:
        raise SpikeportError(f"{inputs}: inputs must be [N, T, {', '.join(map(str, input_shape))}] "
                             f"(samples, time steps, input), got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise SpikeportError(f"{inputs}: inputs hold no samples or no time steps (shape {x.shape})")
    if time_steps is not None and x.shape[1] != time_steps:
        raise SpikeportError(f"{inputs}: inputs have {x.shape[1]} time steps, the graph runs {time_steps}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise SpikeportError(f"{inputs}: inputs contain NaN or infinite values")
    if np.any(x < 0):
        raise SpikeportError(f"{inputs}: inputs contain negative values (Loihi inputs are spikes or graded counts)")
    x = np.ascontiguousarray(np.swapaxes(x.reshape(x.shape[:2] + tuple(input_shape)), 0, 1))
    y = None
    if labels is not None:
        y = load_npy(labels, "labels")
        if y.shape != (x.shape[1],) or y.dtype.kind not in "iub":
            raise SpikeportError(f"{labels}: labels must be [N={x.shape[1]}] integers, got {y.dtype} {y.shape}")
        y = y.astype(np.int64)
    return x, y


def save_inputs(out: str | Path, x: np.ndarray | None, y: np.ndarray | None,
                names: tuple[str, str] = (INPUTS, LABELS)) -> None:
    """Keep samples (x [T, N, ...], written as [N, T, ...]) and labels [N] as ``names`` (default
    ``inputs.npy`` / ``labels.npy``) in the run folder ``out`` (atomic, no pickle)."""
    if x is not None:
        fileio.write_npy(Path(out) / names[0], np.ascontiguousarray(np.swapaxes(x, 0, 1)))
    if y is not None:
        fileio.write_npy(Path(out) / names[1], np.asarray(y))


def run_inputs(net, nir_path: str | Path, inputs: str | Path | None = None, labels: str | Path | None = None,
               samples: int | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(x_int [T, N, ...] Loihi integers, labels or None, x float [T, N, ...]) for an imported graph:
    the given files, else the run folder's ``inputs.npy`` / ``labels.npy``."""
    from spikeport.nirfmt.load import meta_value

    folder = Path(nir_path).parent
    if inputs is None:
        if not (folder / INPUTS).is_file():
            raise SpikeportError(f"{nir_path}: an imported graph needs inputs: pass --inputs FILE.npy "
                                 f"([N, T, ...]) or import with --inputs")
        inputs = folder / INPUTS
        if labels is None and (folder / LABELS).is_file():
            labels = folder / LABELS
    x, y = load_inputs(inputs, labels, net.input_shape, net.time_steps)
    if samples is not None:
        x, y = x[:, :samples], (None if y is None else y[:samples])
    unit = float(meta_value(net, "input_unit", 1.0))
    x_int = np.rint(x / unit).astype(np.int64)
    if not net.graded_input and np.any(x_int > 1):
        raise SpikeportError(f"{inputs}: the graph takes binary spikes but the inputs hold values above 1")
    return x_int, y, x
