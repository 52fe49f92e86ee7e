"""Class prediction from output spikes (numpy only), selected by the graph's ``readout`` metadata.

Readouts (graph metadata ``spikeport.readout``):

* ``spike_count`` - class = argmax_c sum_t sum_{n in group c} s[t, b, n]; ties go to the lowest index. Groups
  are ``readout_population`` consecutive output neurons per class (default 1: one neuron per class).
* ``spike_sequence`` - every class c has a target spike train ``readout_targets[c]`` ([T, N] bool);
  output and targets are filtered with the trace f[t] = alpha f[t-1] + s[t] (f[-1] = 0, alpha =
  ``readout_filter``, per step) and the class is the nearest target,
  argmin_c sum_{t,n} (f_out[t, b, n] - f_c[t, n])^2; ties go to the lowest index. Distances are
  computed in float64 and rounded to ``DIST_DECIMALS`` decimals so that classes at the same
  distance in exact arithmetic tie regardless of summation order (for alpha = 1/2, the default,
  every term is exact in float64 anyway).
* ``current_sum`` - class = argmax_c sum_t sum_{n in group c} u[t, b, n], u the output population's Loihi
  synaptic current (integers, what a probe of u reads); ties go to the lowest index. Where several spikes
  per step carry a producer's decision (Sinabs's IAF: about its summed input over the threshold), this is
  the Loihi quantity closest to it: a Loihi neuron fires at most once per step, its input current does not
  saturate. :func:`output_current` recomputes u exactly from what reaches the output population (its
  input, its own previous spikes, its bias line), so every backend's spikes give the same prediction.
* ``last_value`` - class = argmax_n value[T-1, b, n]: the output population's value at the last step, for a
  network whose output is a value per step (a regression output, :attr:`LoihiNet.regression`): a ``sigma``
  population's payload (its running sum: the logits of a trained sigma-delta network), or the values a
  backend records. Ties go to the lowest index.
"""
from __future__ import annotations

import numpy as np

DIST_DECIMALS = 9
READOUTS = ("spike_count", "spike_sequence", "current_sum", "last_value")
VALUE_READOUTS = ("last_value",)  # readouts that turn a value output into classes


def _text(val) -> str:
    if isinstance(val, np.ndarray) and val.shape == ():
        val = val.item()
    return val.decode() if isinstance(val, bytes) else str(val)


def trace(spikes: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential trace along axis 0 (time): f[t] = alpha f[t-1] + s[t], float64, same shape."""
    s = np.asarray(spikes, dtype=np.float64)
    out = np.empty_like(s)
    acc = np.zeros_like(s[0])
    for t in range(s.shape[0]):
        acc = alpha * acc + s[t]
        out[t] = acc
    return out


def sequence_distances(output_spikes: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Squared distance [B, C] between filtered output trains [T, B, N] and filtered targets [C, T, N]."""
    out = np.asarray(output_spikes)
    tg = np.asarray(targets)
    if tg.ndim != 3 or tg.shape[1:] != (out.shape[0], out.shape[2]):
        raise ValueError(f"readout_targets must be [C, T={out.shape[0]}, N={out.shape[2]}], got {tg.shape}")
    f_out = trace(out, alpha)  # [T, B, N]
    f_tg = trace(tg.transpose(1, 0, 2), alpha)  # [T, C, N]
    dist = np.empty((out.shape[1], tg.shape[0]))
    for c in range(tg.shape[0]):
        dist[:, c] = ((f_out - f_tg[:, c][:, None, :]) ** 2).sum(axis=(0, 2))
    return dist


def reads_values(meta: dict) -> bool:
    """True when the readout classifies by the output's values (a regression output read as classes)."""
    return _text(meta.get("readout", "spike_count")) in VALUE_READOUTS


def classifies(net) -> bool:
    """True when ``net``'s output gives classes: spikes, or values read by a value readout."""
    return not net.regression or reads_values(net.meta)


def needs_current(meta: dict) -> bool:
    """True when the readout reads the output population's current (``current_sum``), not only its spikes."""
    return _text(meta.get("readout", "spike_count")) == "current_sum"


def output_current(net, x: np.ndarray, spikes: list[np.ndarray]) -> np.ndarray:
    """u [T, B, N] int64 of ``net``'s output population (a :class:`spikeport.core.net.LoihiNet`), exactly as
    Loihi computes it, from the integer input x [T, B, ...] (used when the net has one population) and the
    spikes [T, B, N_l] of every population (the one before the output feeds it; the output's own spikes of
    the previous step feed its recurrent connection)."""
    from spikeport.core import loihi

    pop = net.populations[-1]
    feed = np.asarray(x if len(net.populations) == 1 else spikes[-2])
    T, B = feed.shape[:2]
    a = pop.input.apply(feed.reshape(T * B, -1).astype(np.int64)).reshape(T, B, -1) + pop.line_current()
    if pop.recurrent is not None:
        own = np.asarray(spikes[-1]).astype(np.int64)
        a[1:] += pop.recurrent.apply(own[:-1].reshape((T - 1) * B, -1)).reshape(T - 1, B, -1)
    u, out = np.zeros((B, pop.size), np.int64), np.empty((T, B, pop.size), np.int64)
    for t in range(T):
        u = loihi.current_step(u, a[t], pop.lif.du)
        out[t] = u
    return out


def predict_net(net, x: np.ndarray, spikes: list[np.ndarray]) -> np.ndarray:
    """Predicted class [B] of a run of ``net`` on x [T, B, ...] with ``spikes`` (every population's, or at
    least the last two for ``current_sum``), by the graph's readout."""
    current = output_current(net, x, spikes) if needs_current(net.meta) else None
    return predict(spikes[-1], net.meta, current)


def _grouped(values: np.ndarray, meta: dict) -> np.ndarray:
    """[B, N] per-neuron sums -> [B, classes] per class (``readout_population`` consecutive neurons each)."""
    pop = np.asarray(meta.get("readout_population", 1))
    if pop.shape != () or pop.dtype.kind not in "iu" or not 1 <= int(pop) <= values.shape[1] \
            or values.shape[1] % int(pop):
        raise ValueError(f"readout_population must be a whole divisor of the {values.shape[1]} outputs, "
                         f"got {_text(pop)[:40]}")
    return values.reshape(values.shape[0], -1, int(pop)).sum(axis=2)


def predict(output_spikes: np.ndarray, meta: dict, current: np.ndarray | None = None,
            values: np.ndarray | None = None) -> np.ndarray:
    """output_spikes [T, B, N] bool -> predicted class [B] int, by ``meta["readout"]`` (default spike_count);
    ``current_sum`` also needs ``current`` [T, B, N] (:func:`output_current`; zeros for a dry run);
    ``last_value`` reads ``values`` [T, B, N] (default: ``output_spikes``, a sigma population's payloads)."""
    readout = _text(meta.get("readout", "spike_count"))
    if readout == "last_value":
        vals = np.asarray(output_spikes if values is None else values)
        if vals.ndim != 3 or vals.shape[0] < 1:
            raise ValueError(f"readout last_value needs values [T, B, N], got shape {vals.shape}")
        return _grouped(vals[-1].astype(np.int64), meta).argmax(axis=1)
    if readout == "current_sum":
        if current is None or np.shape(current) != np.shape(output_spikes):
            raise ValueError("readout current_sum needs the output population's current u [T, B, N]")
        return _grouped(np.asarray(current, np.int64).sum(axis=0), meta).argmax(axis=1)
    if readout == "spike_count":
        return _grouped(np.asarray(output_spikes).sum(axis=0), meta).argmax(axis=1)
    if readout == "spike_sequence":
        for key in ("readout_targets", "readout_filter"):
            if key not in meta:
                raise ValueError(f"readout spike_sequence needs metadata '{key}'")
        alpha = float(np.asarray(meta["readout_filter"]).reshape(()))
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"readout_filter must be in (0, 1), got {alpha}")
        dist = sequence_distances(output_spikes, np.asarray(meta["readout_targets"]).astype(bool), alpha)
        return np.round(dist, DIST_DECIMALS).argmin(axis=1)
    raise ValueError(f"unknown readout {readout!r}")
