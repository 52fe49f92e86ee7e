"""Spike-by-spike comparison of two runs of the same network (numpy only).

A run is a list of output arrays, one per population, each [T, B, N]: spikes (bool) or, for a graded
(sigma-delta) population, integer payloads (0: no message). Parity reports per-layer mismatch counts (a
message sent on one side only, or a payload that differs) and the first divergence in (sample, layer,
step, neuron) order: the earliest step at which any layer of that sample differs, lowest layer first. A
regression output's values per step are compared by :func:`compare_values`. :class:`Reference` is what a parity
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
    a_value: int | None = None  # the payloads, for a graded layer
    b_value: int | None = None

    def to_dict(self) -> dict:
        out = {k: (bool(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in self.__dict__.items()}
        return {k: v for k, v in out.items() if v is not None or k not in ("a_value", "b_value")}


def _as_compared(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s)
    return s if s.dtype == bool else s.astype(np.int64)


def compare(a: list[np.ndarray], b: list[np.ndarray], names: list[str]) -> dict:
    """Per-layer mismatch counts between runs ``a`` and ``b`` and the first divergence (or None)."""
    if len(a) != len(b) or len(a) != len(names):
        raise ValueError("runs must have one spike array per layer")
    per_layer, first = [], None
    for idx, (sa, sb, name) in enumerate(zip(a, b, names)):
        sa, sb = _as_compared(sa), _as_compared(sb)
        graded = sa.dtype != bool or sb.dtype != bool
        if sa.shape != sb.shape:
            raise ValueError(f"layer {name}: shapes differ {sa.shape} vs {sb.shape}")
        diff = sa != sb
        row = {"layer": name, "mismatches": int(diff.sum()), "spikes_a": int(np.count_nonzero(sa)),
               "spikes_b": int(np.count_nonzero(sb)), "neurons": int(sa.shape[2])}
        if graded:  # both sent, with different payloads
            row["payload_mismatches"] = int((diff & (sa != 0) & (sb != 0)).sum())
        per_layer.append(row)
        if diff.any():
            t, s, n = np.argwhere(diff.transpose(1, 0, 2))[0]  # sample-major, then step, then neuron
            vals = (int(sa[s, t, n]), int(sb[s, t, n])) if graded else (None, None)
            cand = Divergence(name, idx, int(t), int(s), int(n), bool(sa[s, t, n]), bool(sb[s, t, n]), *vals)
            if first is None or (cand.sample, cand.step, cand.layer_index) < (first.sample, first.step, first.layer_index):
                first = cand
    return {"spike_mismatches": int(sum(p["mismatches"] for p in per_layer)), "per_layer": per_layer,
            "first_divergence": first.to_dict() if first else None}


def compare_values(a: np.ndarray, b: np.ndarray) -> dict:
    """A regression output's values per step on two sides, [T, B, N] integers: how many differ, the
    fraction exactly equal and the largest absolute difference."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape:
        raise ValueError(f"output values: shapes differ {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    return {"value_mismatches": int(np.count_nonzero(diff)), "values": int(a.size),
            "fraction_equal": float(np.mean(diff == 0)) if a.size else 1.0,
            "max_abs_difference": int(diff.max(initial=0))}


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
    values: np.ndarray | None = None  # a regression output's values per step [T, b, N] (integer references)


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
