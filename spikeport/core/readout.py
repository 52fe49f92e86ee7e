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
* ``membrane`` - the output population is a non-spiking integrator (a LIF whose threshold v cannot reach:
  no voltage leak, ``loihi.INTEGRATOR_VTH``), read once at the sample's last step: class =
  argmax_c sum_{n in group c} v[T-1, b, n], v its Loihi voltage (integers, what the chip's voltage probe
  reads); ties go to the lowest index. With dv = 0, v[T-1] = sum_t (u[t] + bias): the output's synaptic
  current summed over the sample (``spikeport import --readout current_sum`` deploys this way), plus T
  times its voltage bias. The backends return v per step as the network's ``values`` [T, B, N].
* ``last_value`` - class = argmax_n value[T-1, b, n]: the output population's value at the last step, for a
  network whose output is a value per step: a ``sigma`` population's payload (its running sum: the logits of
  a trained sigma-delta network), or the values a backend records. Ties go to the lowest index. The same
  rule as ``membrane``; the name says which output it reads.
"""
from __future__ import annotations

import numpy as np

DIST_DECIMALS = 9
READOUTS = ("spike_count", "spike_sequence", "membrane", "last_value")
VALUE_READOUTS = ("membrane", "last_value")  # read the output's value at the last step, not its spikes
# graphs written before the readout ran on the chip: their output population spikes and spikeport summed its
# current on the host
CURRENT_SUM_GONE = ("a graph whose output current spikeport summed on the host (imports before the readout ran "
                    "on the chip); import it again: --readout current_sum now deploys the output population as an "
                    "integrator read by its voltage")


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
    """True when the class is read from the output's value at the last step (``membrane``: a non-spiking
    integrator's voltage; ``last_value``: a sigma output's running sum), not from its spikes."""
    return _text(meta.get("readout", "spike_count")) in VALUE_READOUTS


def classifies(net) -> bool:
    """True when ``net``'s outputs become classes: a spiking output, or a value output read as ``membrane``
    (a regression net's values are its result)."""
    return not net.regression or reads_values(net.meta)


def predict_net(net, spikes: list[np.ndarray], values: np.ndarray | None = None) -> np.ndarray:
    """Predicted class [B] of a run of ``net`` (its outputs per population ``spikes``, at least the last;
    ``values`` [T, B, N] the output's value per step, needed by ``membrane``), by the graph's readout."""
    return predict(spikes[-1], net.meta, values)


def _grouped(values: np.ndarray, meta: dict) -> np.ndarray:
    """[B, N] per-neuron sums -> [B, classes] per class (``readout_population`` consecutive neurons each)."""
    pop = np.asarray(meta.get("readout_population", 1))
    if pop.shape != () or pop.dtype.kind not in "iu" or not 1 <= int(pop) <= values.shape[1] \
            or values.shape[1] % int(pop):
        raise ValueError(f"readout_population must be a whole divisor of the {values.shape[1]} outputs, "
                         f"got {_text(pop)[:40]}")
    return values.reshape(values.shape[0], -1, int(pop)).sum(axis=2)


def predict(output_spikes: np.ndarray, meta: dict, values: np.ndarray | None = None) -> np.ndarray:
    """output_spikes [T, B, N] -> predicted class [B] int, by ``meta["readout"]`` (default spike_count);
    ``membrane`` reads ``values`` [T, B, N] (the output's voltage per step; Loihi integers, or a float
    model's voltages) instead; ``last_value`` reads ``values`` or, without them, ``output_spikes`` (a sigma
    population's payloads)."""
    readout = _text(meta.get("readout", "spike_count"))
    if readout == "last_value" and values is None:
        values = output_spikes
    if readout in VALUE_READOUTS:
        if values is None or np.ndim(values) != 3 or np.shape(values)[0] < 1:
            what = "voltage" if readout == "membrane" else "value"
            raise ValueError(f"readout {readout} needs the output population's {what} per step [T, B, N]")
        return _grouped(np.asarray(values)[-1], meta).argmax(axis=1)  # integers, or a float model's values
    if readout == "current_sum":
        raise ValueError(f"readout current_sum: {CURRENT_SUM_GONE}")
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
