"""Training-time augmentation of image batches (numpy): random horizontal flips and random shifts.

``augment(x, flip=, shift=, rng=)`` takes a batch whose last two axes are (H, W): static images
``[B, C, H, W]`` or event bins ``[B, T, C, H, W]``. Per sample: with ``flip``, the width axis is
reversed with probability 1/2 (a mirrored garment is the same Fashion-MNIST class; not for digits);
with ``shift`` = s > 0, the image moves by (dy, dx) drawn uniformly from {-s..s}^2, the uncovered rows
and columns zero (a random crop of the image zero-padded by s). Evaluation never augments.
"""
from __future__ import annotations

import numpy as np


def augment(x: np.ndarray, *, flip: bool, shift: int, rng: np.random.Generator) -> np.ndarray:
    """A new array, x's shape and dtype, each sample flipped / shifted independently (see module doc)."""
    if x.ndim < 3:
        raise ValueError(f"augment needs a batch of images [B, ..., H, W], got shape {x.shape}")
    out = np.array(x, copy=True)
    n = out.shape[0]
    if flip:
        mirror = rng.random(n) < 0.5
        out[mirror] = out[mirror][..., ::-1]
    if shift > 0:
        h, w = out.shape[-2:]
        pad = [(0, 0)] * (out.ndim - 2) + [(shift, shift), (shift, shift)]
        padded = np.pad(out, pad)
        dy, dx = rng.integers(-shift, shift + 1, size=(2, n))
        for i in range(n):
            out[i] = padded[i, ..., shift + dy[i]: shift + dy[i] + h, shift + dx[i]: shift + dx[i] + w]
    return out
