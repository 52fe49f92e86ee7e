"""Input encoders: samples -> time-major integer arrays ``[T, B, ...]`` that the Loihi side consumes exactly.

Static inputs are float images in [0, 1] with shape ``[B, ...]`` (e.g. ``[B, C, H, W]``); event inputs are
integer counts ``[B, T, ...]``. Methods:

* ``direct``  — the quantized frame ``round(x * INPUT_LEVELS)`` repeated every step; int16 graded values 0..255.
* ``rate``    — Bernoulli spikes with probability ``x`` per step, deterministic given ``seed``; uint8 0/1.
* ``latency`` — one spike per pixel with ``x > 0`` at step ``round((1 - x) * (T - 1))``; uint8 0/1.
* ``moving``  — the quantized frame moving over the image plane: a random walk of the offset (dy, dx), each
  step moving by -1, 0 or +1 pixel along each axis (uniform, kept within :func:`move_max` pixels of the
  start: 1/8 of the image, 3 for 28 x 28), uncovered pixels zero; step 0 is the image itself. Deterministic
  given ``seed``; int16 graded values.
  A slowly changing input: between two steps only the pixels along edges change.
* ``events``  — event counts passed through (clipped to 255) and moved to time-major; int16 graded values.

Rounding is numpy's ``rint`` (half to even), the same rule as ``torch.round``.
"""
from __future__ import annotations

import numpy as np

from spikeport.errors import SpikeportError

INPUT_LEVELS = 255  # integer scale of the direct encoder: pixel value 1.0 -> graded spike of 255
ENCODERS = ("direct", "rate", "latency", "moving")  # encoders for static (non-temporal) data
EVENTS = "events"  # the only method for temporal (event) data
_GRADED = ("direct", "moving", EVENTS)
MOVE_FRACTION = 8  # moving: the frame stays within 1/8 of its size of where it started


def is_graded(method: str) -> bool:
    """True where spikes carry an integer payload (``direct``, ``events``): Lava needs ``num_message_bits > 0``."""
    _check_method(method)
    return method in _GRADED


def input_unit(method: str) -> float:
    """Float value of one integer input unit: 1 / INPUT_LEVELS for the frames of ``direct`` and ``moving`` (pixel
    1.0 = 255), 1 for spikes and for ``events`` (a count of events is its own float value), as :func:`float_view`
    gives them to training."""
    _check_method(method)
    return 1.0 / INPUT_LEVELS if method in ("direct", "moving") else 1.0


def quantize_input(x: np.ndarray) -> np.ndarray:
    """Float ``x`` in [0, 1] (any shape) -> int16 array of ``rint(x * INPUT_LEVELS)`` clipped to 0..255."""
    x = _static_input(x, "quantize_input")
    return np.clip(np.rint(x * INPUT_LEVELS), 0, INPUT_LEVELS).astype(np.int16)


def encode(x: np.ndarray, T: int, method: str, *, seed: int = 0) -> np.ndarray:
    """Encode a batch over ``T`` time steps.

    ``x``: float ``[B, ...]`` in [0, 1] for ``direct`` / ``rate`` / ``latency`` (values outside are clipped),
    or integer counts ``[B, T, ...]`` for ``events``. Returns ``[T, B, ...]``: int16 for graded methods,
    uint8 0/1 spikes for ``rate`` and ``latency``. ``seed`` only affects ``rate``.
    """
    _check_method(method)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise SpikeportError(f"encode: T must be a positive integer number of time steps, got {T!r}")
    T = int(T)
    if method == EVENTS:
        return _encode_events(x, T)
    x = np.clip(_static_input(x, f"encode({method})"), 0.0, 1.0)
    if method in ("direct", "moving"):
        q = np.clip(np.rint(x * INPUT_LEVELS), 0, INPUT_LEVELS).astype(np.int16)
        if method == "moving":
            return _moving(q, T, np.random.default_rng(seed))
        return np.ascontiguousarray(np.broadcast_to(q, (T,) + q.shape))
    out = np.zeros((T,) + x.shape, dtype=np.uint8)
    if method == "rate":
        rng = np.random.default_rng(seed)
        for t in range(T):
            out[t] = rng.random(x.shape) < x
        return out
    # latency: brighter pixels fire earlier; x == 0 never fires
    step = np.rint((1.0 - x) * (T - 1)).astype(np.int64)
    idx = np.nonzero(x > 0)
    out[(step[idx],) + idx] = 1
    return out


def float_view(encoded: np.ndarray, method: str) -> np.ndarray:
    """The float32 values training sees for an encoded array (same shape).

    ``direct`` / ``moving``: graded values / INPUT_LEVELS (back to [0, 1]); ``rate`` / ``latency``: 0/1 spikes as is;
    ``events``: counts as floats.
    """
    _check_method(method)
    out = np.asarray(encoded).astype(np.float32)
    if method in ("direct", "moving"):
        out /= np.float32(INPUT_LEVELS)
    return out


def move_max(h: int, w: int) -> int:
    """How far (pixels) a ``moving`` frame may drift from where it started: 1/8 of the image, at least 1."""
    return max(1, min(int(h), int(w)) // MOVE_FRACTION)


def offsets(n: int, T: int, rng: np.random.Generator, bound: int = 3) -> np.ndarray:
    """The ``moving`` encoder's offsets [T, n, 2] (dy, dx) in pixels: 0 at step 0, then a random walk of
    steps in {-1, 0, 1} per axis, clipped to [-bound, bound]. Drawn sample-major, so the first k samples of
    a batch walk as a batch of those k alone would."""
    out = np.zeros((T, n, 2), np.int64)
    steps = rng.integers(-1, 2, size=(n, max(T - 1, 0), 2)).transpose(1, 0, 2)
    for t in range(1, T):
        out[t] = np.clip(out[t - 1] + steps[t - 1], -bound, bound)
    return out


def _moving(q: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """Frames [T, B, ..., H, W] of the images q [B, ..., H, W] moved by :func:`offsets` (zero filled)."""
    if q.ndim < 3:
        raise SpikeportError(f"encode(moving): needs images [B, ..., H, W], got shape {q.shape}")
    n, (h, w) = q.shape[0], q.shape[-2:]
    m = move_max(h, w)
    padded = np.pad(q, [(0, 0)] * (q.ndim - 2) + [(m, m), (m, m)])
    out = np.empty((T,) + q.shape, q.dtype)
    off = offsets(n, T, rng, m)
    for t in range(T):
        for i in range(n):
            dy, dx = off[t, i]
            out[t, i] = padded[i, ..., m - dy: m - dy + h, m - dx: m - dx + w]
    return out


def _check_method(method: str) -> None:
    if method not in ENCODERS + (EVENTS,):
        raise SpikeportError(f"unknown encoder {method!r}; valid: {', '.join(ENCODERS)} for static data, "
                             f"{EVENTS} for event data")


def _static_input(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise SpikeportError(f"{where}: input must be a real array, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise SpikeportError(f"{where}: input contains NaN or infinite values")
    return x.astype(np.float64)


def _encode_events(x: np.ndarray, T: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise SpikeportError(f"encode(events): event counts must be integers, got dtype {x.dtype}")
    if x.ndim < 3:
        raise SpikeportError(f"encode(events): event data must be [B, T, ...], got shape {x.shape}")
    if x.shape[1] != T:
        raise SpikeportError(f"encode(events): T={T} but the event data has {x.shape[1]} time bins; "
                             f"use T={x.shape[1]} or reload the dataset with n_bins={T}")
    counts = np.clip(x, 0, INPUT_LEVELS).astype(np.int16)
    return np.ascontiguousarray(np.swapaxes(counts, 0, 1))
