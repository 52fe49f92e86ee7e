"""Spike-by-spike comparison of two runs of the same network (numpy only).

A run is a list of spike arrays, one per population, each [T, B, N] bool. Parity reports per-layer
mismatch counts and the first divergence in (sample, layer, step, neuron) order: the earliest step
at which any layer of that sample differs, lowest layer first. :class:`Reference` is what a parity
run holds the backends against (a checkpoint's integer forward, an imported graph's float
simulation, ...): :mod:`spikeport.pipeline.parity_stage` takes one as a parameter.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Divergence:
    """Where two runs first differ. ``sample`` indexes the compared batch."""

    layer: str
    layer_index: int
    sample: int
    step: int
    neuron: int
    a_spike: bool
    b_spike: bool

    def to_dict(self) -> dict:
        return {k: (bool(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in self.__dict__.items()}


def compare(a: list[np.ndarray], b: list[np.ndarray], names: list[str]) -> dict:
    """Per-layer mismatch counts between runs ``a`` and ``b`` and the first divergence (or None)."""
    if len(a) != len(b) or len(a) != len(names):
        raise ValueError("runs must have one spike array per layer")
    per_layer, first = [], None
    for idx, (sa, sb, name) in enumerate(zip(a, b, names)):
        sa, sb = np.asarray(sa, bool), np.asarray(sb, bool)
        if sa.shape != sb.shape:
            raise ValueError(f"layer {name}: shapes differ {sa.shape} vs {sb.shape}")
        diff = sa != sb
        per_layer.append({"layer": name, "mismatches": int(diff.sum()), "spikes_a": int(sa.sum()),
                          "spikes_b": int(sb.sum()), "neurons": int(sa.shape[2])})
        if diff.any():
            t, s, n = np.argwhere(diff.transpose(1, 0, 2))[0]  # sample-major, then step, then neuron
            cand = Divergence(name, idx, int(t), int(s), int(n), bool(sa[s, t, n]), bool(sb[s, t, n]))
            if first is None or (cand.sample, cand.step, cand.layer_index) < (first.sample, first.step, first.layer_index):
                first = cand
    return {"spike_mismatches": int(sum(p["mismatches"] for p in per_layer)), "per_layer": per_layer,
            "first_divergence": first.to_dict() if first else None}


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of samples with the same predicted class."""
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    return float(np.mean(pred_a == pred_b)) if pred_a.size else 1.0


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    pred, labels = np.asarray(pred), np.asarray(labels)
    return float(np.mean(pred == labels)) if pred.size else 0.0


@dataclass
class RefChunk:
    """A reference's answer for one chunk of b samples: ``spikes`` per layer [T, b, N] bool (compared
    spike by spike when the reference is exact), its predictions ``pred`` [b], the float model's
    ``float_pred`` [b], and ``outputs`` {side: [b, n_out]} to store per sample (output spike counts
    of an integer side, the readout sums of a float side)."""

    spikes: list
    pred: np.ndarray
    float_pred: np.ndarray
    outputs: dict


class Reference(ABC):
    """Interface of a parity reference. ``exact``: spikes must equal the backends' (integer
    arithmetic); otherwise the gate is ``min_agreement`` of predictions. ``describe`` goes into
    parity.json as ``reference``; ``report()`` adds reference-specific fields."""

    exact: bool = True
    describe: str = ""
    dataset: str = ""
    min_agreement: float | None = None

    @abstractmethod
    def inputs(self, net, samples: int | None, before_encoding: Callable[[int], None] | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """(x_int [T, B, ...] Loihi integers, labels [B] or None)."""

    @abstractmethod
    def run(self, x_int: np.ndarray, samples: slice) -> RefChunk:
        """The reference's :class:`RefChunk` for the chunk ``x_int`` (= the inputs' ``samples``)."""

    def report(self) -> dict:
        return {}
