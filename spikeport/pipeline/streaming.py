"""Deploy and parity over many samples in chunks, so that memory stays flat however many samples run.

Samples are independent (every population resets at each sample window), so running the test set
chunk by chunk and accumulating the results equals one run over all of it. The encoded inputs are
made once, up front (rate coding draws its random spikes for the whole set, so the inputs do not
depend on the chunk size); then each chunk runs through the reference and every backend. Spike
comparisons, predictions and timings accumulate; of the spikes themselves only one sample per
comparison is kept (its first divergence, or sample 0) for ``parity_spikes.npz``. The chunk size
comes from :func:`spikeport.pipeline.limits.plan_chunk` (the memory budget).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from spikeport.core.readout import classifies, predict_net
from spikeport.measure import parity as parity_mod

Spikes = list  # one array per population, each [T, B, N]: bool spikes or integer payloads


class ValueTally:
    """:func:`spikeport.measure.parity.compare_values` of a regression output, accumulated over chunks."""

    def __init__(self):
        self.mismatches = self.count = self.max_abs = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        cmp = parity_mod.compare_values(a, b)
        self.mismatches += cmp["value_mismatches"]
        self.count += cmp["values"]
        self.max_abs = max(self.max_abs, cmp["max_abs_difference"])

    def result(self) -> dict:
        return {"value_mismatches": int(self.mismatches), "values": int(self.count),
                "fraction_equal": 1.0 - self.mismatches / self.count if self.count else 1.0,
                "max_abs_difference": int(self.max_abs)}


class Tally:
    """:func:`spikeport.measure.parity.compare` accumulated over chunks of samples."""

    def __init__(self, names: list[str]):
        self.names = names
        self.per_layer = [{"layer": n, "mismatches": 0, "spikes_a": 0, "spikes_b": 0, "neurons": 0} for n in names]
        self.first: dict | None = None

    def add(self, a: Spikes, b: Spikes, offset: int) -> bool:
        """Compare one chunk (samples ``offset`` ...); True when this chunk holds the first divergence."""
        cmp = parity_mod.compare(a, b, self.names)
        for acc, row in zip(self.per_layer, cmp["per_layer"]):
            for key in ("mismatches", "spikes_a", "spikes_b"):
                acc[key] += row[key]
            acc["neurons"] = row["neurons"]
        if self.first is None and cmp["first_divergence"]:
            self.first = {**cmp["first_divergence"], "sample": cmp["first_divergence"]["sample"] + offset}
            return True
        return False

    def result(self) -> dict:
        """Same keys as ``parity.compare``: spike_mismatches, per_layer, first_divergence."""
        return {"spike_mismatches": int(sum(r["mismatches"] for r in self.per_layer)),
                "per_layer": [dict(r) for r in self.per_layer], "first_divergence": self.first}


@dataclass
class ChunkedParity:
    """What parity needs from a chunked run: predictions and per-sample outputs of every side, seconds
    per backend, one :class:`Tally` per compared pair and the kept samples' spikes ``{pair or None:
    (sample, {side: [[T, N_i] per layer]})}`` (None: sample 0). ``outputs[side]`` is [B, n_out]: output
    spike counts (backends, integer references) or the float model's readout sums; a membrane readout's
    voltage at the last step; a regression output's values [B, T, n_out]."""

    ref_pred: np.ndarray
    float_pred: np.ndarray
    preds: dict[str, np.ndarray]
    seconds: dict[str, float]
    tallies: dict[str, Tally]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    kept: dict = field(default_factory=dict)
    value_tallies: dict[str, ValueTally] = field(default_factory=dict)

    def sample_sides(self, divergence: dict | None) -> tuple[int, dict]:
        """(sample, {side: [T, N_i] spikes per layer}) to write: the reported divergence's, else sample 0's."""
        return self.kept[divergence["pair"]] if divergence else self.kept[None]


def parity_chunks(net, x_int: np.ndarray, reference: Callable, backends: list[str], run: Callable,
                  chunk: int, pairs: list[tuple[str, str]],
                  progress: Callable[[str, int, int], None] | None = None) -> ChunkedParity:
    """Run x_int [T, B, ...] in chunks of ``chunk`` samples and compare the ``pairs`` of sides
    ("reference" or a backend) spike by spike. ``reference(xs, samples)`` -> a
    :class:`~spikeport.measure.parity.RefChunk` for the chunk ``xs`` = the inputs' ``samples`` (a
    slice); ``run(xs, backend)`` -> an object with ``spikes`` (per layer) and ``seconds``.
    ``progress(side, done, total)`` after each side finishes a chunk."""
    names = [p.name for p in net.populations]
    B = x_int.shape[1]
    tallies = {f"{a}-{b}": Tally(names) for a, b in pairs}
    regression, classify = bool(getattr(net, "regression", False)), classifies(net)
    value_tallies = {f"{a}-{b}": ValueTally() for a, b in pairs} if regression else {}
    preds: dict[str, list] = {b: [] for b in ["reference", "float", *backends]}
    outputs: dict[str, list] = {}
    seconds = {b: 0.0 for b in backends}
    kept: dict = {}
    for lo in range(0, B, chunk):
        xs = x_int[:, lo:lo + chunk]
        ref = reference(xs, slice(lo, lo + xs.shape[1]))
        sides, done = {"reference": ref.spikes}, min(lo + chunk, B)
        if progress:
            progress("reference", done, B)
        values = {"reference": ref.values}
        for b in backends:
            res = run(xs, b)
            sides[b], seconds[b] = res.spikes, seconds[b] + res.seconds
            values[b] = getattr(res, "values", None)
            if progress:
                progress(b, done, B)
        if regression:
            for (a, b), tally in zip(pairs, value_tallies.values()):
                if values[a] is not None and values[b] is not None:  # a float reference has none
                    tally.add(values[a], values[b])
        if not classify:  # a regression output: its values per step are the result, no classes
            zeros = np.zeros(xs.shape[1], np.int64)
            for key in preds:
                preds[key].append(zeros)
            for side, val in values.items():
                if val is not None:
                    outputs.setdefault(side, []).append(np.asarray(val).transpose(1, 0, 2))
        else:
            preds["reference"].append(np.asarray(ref.pred))
            preds["float"].append(np.asarray(ref.float_pred))
            if regression and not ref.outputs:  # a sigma output read as classes: its values per step
                for side, val in values.items():
                    if val is not None:
                        outputs.setdefault(side, []).append(np.asarray(val).transpose(1, 0, 2))
            else:
                ours = {b: np.asarray(values[b])[-1] if regression else np.count_nonzero(sides[b][-1], axis=0)
                        for b in backends}  # a membrane readout's voltage at the last step, or spike counts
                for side, out in {**ref.outputs, **ours}.items():
                    outputs.setdefault(side, []).append(np.asarray(out))
            for b in backends:
                preds[b].append(predict_net(net, sides[b], values[b]))
        if lo == 0:
            kept[None] = (0, _slice(sides, 0))
        for (a, b), tally in zip(pairs, tallies.values()):
            if tally.add(sides[a], sides[b], lo):
                kept[f"{a}-{b}"] = (tally.first["sample"], _slice(sides, tally.first["sample"] - lo))
        del sides, ref
    cat = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in preds.items()}
    return ChunkedParity(ref_pred=cat.pop("reference"), float_pred=cat.pop("float"), preds=cat, seconds=seconds,
                         tallies=tallies, outputs={k: np.concatenate(v) for k, v in outputs.items()}, kept=kept,
                         value_tallies=value_tallies)


def _slice(sides: dict, i: int) -> dict:
    """One sample's outputs of every layer and side: spikes bool, graded payloads as they are."""
    return {side: [(s[:, i] if s.dtype != bool else s[:, i] != 0) for s in map(np.asarray, spikes)]
            for side, spikes in sides.items()}


def run_chunks(run: Callable, x_int: np.ndarray, chunk: int,
               progress: Callable[[int, int], None] | None = None) -> tuple[Spikes, float]:
    """``run(xs)`` (-> object with ``spikes``, ``seconds``) over chunks of x_int [T, B, ...]; returns the
    spikes joined along the batch axis and the summed seconds. For output-only runs (deploy): the
    joined spikes are the last population's, small. ``progress(done, total)`` after each chunk."""
    parts, seconds, B = [], 0.0, x_int.shape[1]
    for lo in range(0, B, chunk):
        res = run(x_int[:, lo:lo + chunk])
        parts.append(res.spikes)
        seconds += res.seconds
        if progress:
            progress(min(lo + chunk, B), B)
    if len(parts) == 1:
        return parts[0], seconds
    return [np.concatenate([p[i] for p in parts], axis=1) for i in range(len(parts[0]))], seconds
