"""Operation counts of a spiking network run: SynOps, effective MACs, dense MACs, neuron updates.

Counting follows NeuroBench (``neurobench.metrics.workload.SynapticOperations``), the reference
users trust: one synaptic operation is one weight read caused by one nonzero input event on one
nonzero weight. For input ``x[t, b, i]`` and weight matrix ``W`` ``[n_out, n_in]``::

    ops = sum_{t, b, i} [x[t, b, i] != 0] * nnz(W[:, i])

Binary (0/1 spike) inputs give NeuroBench's ``Effective_ACs`` (``synops`` here); graded inputs
(analog first-layer input) give its ``Effective_MACs`` (``effective_macs`` here), counted once per
nonzero event whatever its value. Counts must be taken on the deployed (quantized, masked) integer
weights: stored zeros are eliminated, so a pruned weight never counts.

Everything in the returned dict is PER SAMPLE (summed over ``B`` then divided by ``B``) unless
its name says otherwise; ``per_step`` arrays have length ``T`` and are per sample too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from spikeport.errors import SpikeportError

# Above this many weight-matrix entries the "which neurons were reached" product runs on scipy
# sparse matrices instead of a dense float32 BLAS product (64 MiB of float32 at the limit).
_DENSE_PATTERN_LIMIT = 1 << 24
# Rows of the [T*B, n_in] event array processed at once (bounds temporary memory).
_ROW_CHUNK = 8192


@dataclass
class OpLayer:
    """One deployed connection and the activity that crossed it during a run.

    Attributes:
        name: layer name, used in reports and error messages.
        matrix: deployed integer weights ``[n_out, n_in]`` as a scipy sparse matrix (a dense
            ndarray is accepted too). Conv and pooling layers are passed unrolled to this matrix.
            Zero entries, stored or not, are ignored.
        input_events: ``[T, B, n_in]`` integers: 0/1 spikes, or graded values when
            ``graded_input`` is True (analog first-layer input).
        output_spikes: ``[T, B, n_out]`` 0/1 spikes emitted by this layer's neurons.
        graded_input: True when ``input_events`` carries graded values (counted as effective MACs).
        recurrent: optional ``[n_out, n_out]`` weights driven by this layer's own spikes of the
            previous step (``output_spikes[t - 1]``; nothing arrives at ``t = 0``).
        synapses_per_weight, recurrent_synapses_per_weight: Loihi synapses per nonzero weight of
            ``matrix`` / ``recurrent`` (2 for 16-bit weights, each a high and a low byte synapse, both
            stored and read): the synaptic operations (and synapses) they cost; dense MACs of the ANN
            equivalent count the weight once.
    """

    name: str
    matrix: sp.csr_matrix
    input_events: np.ndarray
    output_spikes: np.ndarray
    graded_input: bool = False
    recurrent: sp.csr_matrix | None = None
    synapses_per_weight: int = 1
    recurrent_synapses_per_weight: int = 1


def count_ops(layers: list[OpLayer]) -> dict:
    """Count operations of a run, per layer, per time step and in total (all per sample).

    Args:
        layers: the network's connections in any order; all must share ``T`` and ``B``.

    Returns:
        A JSON-ready dict with ``samples`` (B), ``time_steps`` (T), ``totals`` (dict of counts
        summed over layers), ``per_step`` (dict of length-T lists summed over layers) and
        ``layers`` (list of dicts, each with ``name``). Count keys, all per sample:

        - ``synops``: binary input events x nonzero fan-out, recurrent synops included
          (NeuroBench ``Effective_ACs``).
        - ``effective_macs``: nonzero graded input events x nonzero fan-out (NeuroBench
          ``Effective_MACs``).
        - ``dense_macs``: MACs of the same layers run as a dense ANN evaluated ONCE per sample
          (``n_in * n_out``, plus ``n_out * n_out`` for a recurrent matrix). An ANN sees the whole
          input once; it does not repeat its work T times. ``dense_macs_per_step_total`` is
          ``T * dense_macs`` (NeuroBench's ``Dense``: a dense layer evaluated every step).
        - ``dense_weights``: weights of that dense ANN (sizes its weight memory; = ``dense_macs``).
        - ``ann_neuron_updates``: activations of that ANN, ``n_out`` per layer, once per sample.
        - ``neuron_updates_active``: neuron-steps that received at least one event over a
          nonzero weight (even if the weighted sum cancels to 0) or spiked.
        - ``neuron_updates_inactive``: the other neuron-steps; ``neuron_updates`` = both = T*n_out.
        - ``spikes_out``: spikes emitted (routed); ``input_events``: nonzero input events.
        - ``firing_rate``: spikes / (T * n_out), averaged over samples.
        - ``activation_sparsity``: fraction of zero entries of the feed-forward input events.
    """
    if not layers:
        raise SpikeportError("count_ops: no layers given")
    per_layer = [_count_layer(layer) for layer in layers]
    shapes = {(c["time_steps"], c["samples"]) for c in per_layer}
    if len(shapes) != 1:
        raise SpikeportError(f"count_ops: layers disagree on (T, B): {sorted(shapes)}")
    (steps, samples), = shapes

    keys = ("synops", "effective_macs", "dense_macs", "dense_macs_per_step_total", "dense_weights",
            "ann_neuron_updates", "neuron_updates_active", "neuron_updates_inactive",
            "neuron_updates", "spikes_out", "input_events")
    totals = {k: float(sum(c[k] for c in per_layer)) for k in keys}
    n_out = sum(c["n_out"] for c in per_layer)
    entries = sum(c["n_in"] for c in per_layer) * steps
    totals["firing_rate"] = totals["spikes_out"] / (steps * n_out) if n_out else 0.0
    totals["activation_sparsity"] = 1.0 - totals["input_events"] / entries if entries else 1.0
    step_keys = ("synops", "effective_macs", "neuron_updates_active", "spikes_out")
    per_step = {k: np.sum([c["per_step"][k] for c in per_layer], axis=0).tolist() for k in step_keys}
    for c in per_layer:
        del c["time_steps"], c["samples"]
    return {"samples": samples, "time_steps": steps, "totals": totals, "per_step": per_step,
            "layers": per_layer}


def _count_layer(layer: OpLayer) -> dict:
    """Counts of one layer (per sample) plus its ``T``/``B``; raises SpikeportError on bad shapes."""
    weights = _nonzero_csr(layer.matrix, layer.name, "matrix")
    n_out, n_in = weights.shape
    x = np.asarray(layer.input_events)
    s = np.asarray(layer.output_spikes)
    if x.ndim != 3 or x.shape[2] != n_in:
        raise SpikeportError(f"layer {layer.name!r}: input_events has shape {x.shape}, "
                             f"expected [T, B, {n_in}] to match matrix {weights.shape}")
    steps, samples, _ = x.shape
    if s.shape != (steps, samples, n_out):
        raise SpikeportError(f"layer {layer.name!r}: output_spikes has shape {s.shape}, "
                             f"expected {(steps, samples, n_out)}")
    if steps == 0 or samples == 0:
        raise SpikeportError(f"layer {layer.name!r}: empty run (T={steps}, B={samples})")
    if not layer.graded_input:
        _check_binary(x, layer.name, "input_events (set graded_input=True for graded input)")
    _check_binary(s, layer.name, "output_spikes")
    events = x != 0
    spiked = s != 0

    # Events per step: count of firing (b, i) pairs times the column nnz (fan-out) of input i.
    fanout = np.diff(weights.tocsc().indptr).astype(np.int64) * int(layer.synapses_per_weight)
    ff_ops_t = events.sum(axis=1, dtype=np.int64) @ fanout                       # [T]
    reached = _reached(events.reshape(steps * samples, n_in), weights)       # [T*B, n_out]
    rec_ops_t = np.zeros(steps, dtype=np.int64)
    rec_nnz, dense = 0, n_in * n_out
    if layer.recurrent is not None:
        rec = _nonzero_csr(layer.recurrent, layer.name, "recurrent")
        if rec.shape != (n_out, n_out):
            raise SpikeportError(f"layer {layer.name!r}: recurrent has shape {rec.shape}, "
                                 f"expected {(n_out, n_out)}")
        rec_nnz, dense = rec.nnz, dense + n_out * n_out
        prev = np.zeros_like(spiked)
        prev[1:] = spiked[:-1]
        rec_ops_t = prev.sum(axis=1, dtype=np.int64) @ np.diff(rec.tocsc().indptr).astype(np.int64) \
            * int(layer.recurrent_synapses_per_weight)
        reached |= _reached(prev.reshape(-1, n_out), rec)
    active = reached.reshape(steps, samples, n_out) | spiked
    active_t = active.sum(axis=(1, 2), dtype=np.int64)                       # [T]
    spikes_t = spiked.sum(axis=(1, 2), dtype=np.int64)                       # [T]

    synops_t = rec_ops_t + (0 if layer.graded_input else ff_ops_t)
    emacs_t = ff_ops_t if layer.graded_input else np.zeros(steps, dtype=np.int64)
    n_events = int(events.sum(dtype=np.int64))
    updates = steps * n_out
    active_total = float(active_t.sum()) / samples
    return {
        "name": layer.name, "n_in": n_in, "n_out": n_out, "nnz": int(weights.nnz),
        "recurrent_nnz": int(rec_nnz), "graded_input": bool(layer.graded_input),
        "time_steps": steps, "samples": samples,
        "synops": float(synops_t.sum()) / samples,
        "effective_macs": float(emacs_t.sum()) / samples,
        "dense_macs": float(dense),
        "dense_macs_per_step_total": float(steps * dense),
        "dense_weights": float(dense),
        "ann_neuron_updates": float(n_out),
        "neuron_updates_active": active_total,
        "neuron_updates_inactive": float(updates) - active_total,
        "neuron_updates": float(updates),
        "spikes_out": float(spikes_t.sum()) / samples,
        "input_events": n_events / samples,
        "firing_rate": float(spikes_t.sum()) / (samples * steps * n_out),
        "activation_sparsity": 1.0 - n_events / (steps * samples * n_in) if n_in else 1.0,
        "per_step": {
            "synops": (synops_t / samples).tolist(),
            "effective_macs": (emacs_t / samples).tolist(),
            "neuron_updates_active": (active_t / samples).tolist(),
            "spikes_out": (spikes_t / samples).tolist(),
        },
    }


def _nonzero_csr(matrix, layer: str, field: str) -> sp.csr_matrix:
    """A CSR copy of ``matrix`` with explicit zeros removed (the caller's matrix is untouched)."""
    try:
        out = sp.csr_matrix(matrix, copy=True)
    except (TypeError, ValueError) as err:
        raise SpikeportError(f"layer {layer!r}: {field} is not a 2-D matrix ({err})") from None
    if out.ndim != 2:
        raise SpikeportError(f"layer {layer!r}: {field} must be 2-D, got shape {out.shape}")
    if out.nnz and not np.all(np.isfinite(out.data)):
        raise SpikeportError(f"layer {layer!r}: {field} has non-finite weights")
    out.eliminate_zeros()
    return out


def _check_binary(a: np.ndarray, layer: str, field: str) -> None:
    if a.dtype == np.bool_:
        return
    if np.any((a != 0) & (a != 1)):
        raise SpikeportError(f"layer {layer!r}: {field} holds values other than 0 and 1")


def _reached(events: np.ndarray, weights: sp.csr_matrix) -> np.ndarray:
    """bool ``[rows, n_out]``: True where a row's events hit at least one nonzero weight of a neuron.

    ``events`` is bool ``[rows, n_in]``; ``weights`` is ``[n_out, n_in]`` without stored zeros.
    Small matrices use a dense float32 product (counts stay exact: each sum is at most n_in);
    large ones (unrolled convolutions) a sparse product that scales with nnz.
    """
    pattern = weights.copy()
    pattern.data = np.ones_like(pattern.data, dtype=np.float32)
    n_out, n_in = pattern.shape
    use_dense = n_out * n_in <= _DENSE_PATTERN_LIMIT
    pattern_t = pattern.T.toarray() if use_dense else pattern.T.tocsr()
    out = np.zeros((events.shape[0], n_out), dtype=bool)
    for lo in range(0, events.shape[0] if n_in else 0, _ROW_CHUNK):  # no inputs (an encoder): nothing reached
        chunk = events[lo:lo + _ROW_CHUNK]
        if use_dense:
            hits = chunk.astype(np.float32) @ pattern_t
        else:
            hits = (sp.csr_matrix(chunk, dtype=np.float32) @ pattern_t).toarray()
        out[lo:lo + _ROW_CHUNK] = hits > 0
    return out
