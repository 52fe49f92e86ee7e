"""Operations, resources and the energy estimate of a network on Xylo Audio 2 (numpy only).

* **SynOps**: every delivered event is one synaptic operation, as Xylo (and xylosim) process them: an input
  channel's k events reach each of its nonzero synapses k times; a hidden neuron's n spikes reach each of its
  recurrent and readout synapses n times. Per inference (one sample of T steps), averaged over the samples.
* **Neuron updates**: every hidden and output neuron every step ((Nhid + Nout) x T).
* **Resources**: inputs, hidden and output neurons, synapses (nonzero weights per matrix), the largest
  recurrent fan-out and the recurrent memory, each beside its Xylo Audio 2 limit (:mod:`spikeport.core.xylo`).
* **Energy** (:func:`estimate`): the profile in ``xylo.toml``: measured dynamic power x T x dt, an ESTIMATE
  (its status and derivation are carried into the report with the number).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import ValidationError

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet
from spikeport.errors import SpikeportError
from spikeport.files.schema import StrictModel
from spikeport.measure.profile_schema import PowerModel, PriceModel

PROFILE = "xylo-audio2"


class XyloProfile(StrictModel):
    """One chip-level Xylo profile (``xylo.toml``): measured power and energy with their sources."""

    chip: str
    status: str
    derived_from: str
    default_dt_s: float
    default_dt_source: str
    dynamic_power: PowerModel
    energy_per_inference: Optional[PriceModel] = None


def load_profile(name: str = PROFILE, path: str | Path | None = None) -> XyloProfile:
    import tomli

    text = Path(path).read_text() if path else (resources.files("spikeport.measure") / "xylo.toml").read_text()
    data = tomli.loads(text)
    if name not in data:
        raise SpikeportError(f"{path or 'xylo.toml'}: no profile {name!r}")
    try:
        return XyloProfile.model_validate(data[name])
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpikeportError(f"{path or 'xylo.toml'}: {name}.{where}: {first['msg']}") from None


def count_ops(net: XyloNet, x: np.ndarray, hidden_spikes: np.ndarray) -> dict:
    """Per-inference operation counts (means over the B samples) of ``net`` on x [T, B, Nin] with its hidden
    spike counts [T, B, Nhid]."""
    fan_in = (net.weights_in != 0).sum(axis=(1, 2))  # synapses of each input channel
    fan_rec = (net.weights_rec != 0).sum(axis=(1, 2))
    fan_out = (net.weights_out != 0).sum(axis=1)
    B = x.shape[1]
    events = np.asarray(x, np.int64).sum(axis=(0, 1))  # [Nin]
    spikes = np.asarray(hidden_spikes, np.int64).sum(axis=(0, 1))  # [Nhid]
    syn_in, syn_rec, syn_out = (float(events @ fan_in) / B, float(spikes @ fan_rec) / B, float(spikes @ fan_out) / B)
    return {"synops": syn_in + syn_rec + syn_out, "synops_input": syn_in, "synops_recurrent": syn_rec,
            "synops_readout": syn_out, "input_events": float(events.sum()) / B,
            "hidden_spikes": float(spikes.sum()) / B, "neuron_updates": (net.n_hidden + net.n_out) * net.time_steps}


def resources_used(net: XyloNet) -> list[dict]:
    """Each Xylo Audio 2 resource: used, limit, what it is."""
    fan = net.fanout()
    rows = [("input channels", net.n_in, xylo.INPUT_CHANNELS), ("hidden neurons", net.n_hidden, xylo.HIDDEN_MAX),
            ("output neurons", net.n_out, xylo.OUTPUT_MAX),
            ("input synapses", int((net.weights_in != 0).sum()), xylo.INPUT_CHANNELS * xylo.HIDDEN_MAX * 2),
            ("recurrent synapses", int((net.weights_rec != 0).sum()), 2 * xylo.RECURRENT_ENTRIES_MAX),
            ("readout synapses", int((net.weights_out != 0).sum()), xylo.HIDDEN_MAX * xylo.OUTPUT_MAX),
            ("largest recurrent fan-out", int(fan.max()) if fan.size else 0, xylo.FANOUT_MAX),
            ("recurrent fan-out memory", int(fan.sum()), xylo.RECURRENT_ENTRIES_MAX)]
    return [{"resource": r, "used": int(u), "limit": int(lim)} for r, u, lim in rows]


def estimate(profile: XyloProfile, time_steps: int, dt: float | None, dt_source: str | None = None) -> dict:
    """Energy per inference: dynamic power x T x dt (the profile's default dt when ``dt`` is None); ``dt_source``
    says where ``dt`` comes from."""
    dt_used = profile.default_dt_s if dt is None else float(dt)
    seconds = time_steps * dt_used
    return {"energy_j": profile.dynamic_power.value_w * seconds, "inference_s": seconds, "dt_s": dt_used,
            "dt_source": profile.default_dt_source if dt is None else (dt_source or "the specification's dt"),
            "status": profile.status, "derived_from": profile.derived_from, "chip": profile.chip,
            "dynamic_power_w": profile.dynamic_power.value_w, "power_source": profile.dynamic_power.source,
            "power_quality": profile.dynamic_power.quality, "power_note": profile.dynamic_power.note,
            "measured_network_j": None if profile.energy_per_inference is None else profile.energy_per_inference.value_j,
            "measured_network_source": None if profile.energy_per_inference is None
            else profile.energy_per_inference.source}
