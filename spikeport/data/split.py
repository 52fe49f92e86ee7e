"""A validation split carved from a dataset's training set (numpy only).

Hyper-parameters are chosen on data that is never scored: :func:`validation_split` holds out a seeded,
stratified fraction of the *training* samples and returns them as the test split of a new
:class:`~spikeport.data.datasets.Dataset`. The real test set is not touched (not even loaded into the result).
"""
from __future__ import annotations

import numpy as np

from spikeport.data.datasets import Dataset
from spikeport.errors import SpikeportError

SPLIT_SEED = 0x5A11D  # mixed with the run's seed: the held-out samples depend on the seed, reproducibly


def validation_split(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """``ds`` with its training samples split: round(fraction * n_c) samples of every class c held out
    (chosen by a generator seeded with ``seed``) as ``x_test`` / ``y_test``, the others (in their original
    order) as ``x_train`` / ``y_train``. ``fraction`` in (0, 0.5], or a whole number >= 1 of samples (held out
    as the fraction count / N of every class, so about that many); ``name`` gets a ``+validation`` suffix."""
    if fraction >= 1 and fraction == int(fraction):
        fraction = fraction / max(len(ds.y_train), 1)
    if not 0.0 < fraction <= 0.5:
        raise SpikeportError(f"validation must be a fraction in (0, 0.5] or at most half the training samples, "
                             f"got {fraction}")
    rng = np.random.default_rng([int(seed), SPLIT_SEED])
    y = np.asarray(ds.y_train)
    held = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(fraction * len(idx)))
        held[rng.choice(idx, size=k, replace=False)] = True
    if held.all() or not held.any():
        raise SpikeportError(f"dataset {ds.name}: a validation fraction of {fraction} leaves no training or no "
                             "validation samples")
    keep = ~held
    return Dataset(f"{ds.name}+validation", ds.x_train[keep], y[keep], ds.x_train[held], y[held], ds.n_classes,
                   ds.temporal)
