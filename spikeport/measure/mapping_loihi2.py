"""An ESTIMATE of how many Loihi 2 neuron cores (and chips) a network needs, and which limit binds.

Intel's public figures (Intel Labs, "Taking Neuromorphic Computing to the Next Level with Loihi 2",
technology brief, 2021): a chip has 128 neuron cores and 6 embedded (Lakemont x86) cores, and holds
up to 1 million neurons and up to 120 million synapses.

Intel publishes NO per-core neuron, synapse or fan-in limit for Loihi 2 (cores share a flexible
memory whose split between neurons, synapses and axon routing the compiler chooses). What we assume:

- neurons per core: the chip maximum shared evenly, ``floor(1,000,000 / 128) = 7812``;
- synapses per core: ``120,000,000 / 128 = 937,500`` (nonzero synapses; a dense layer's zeros are
  not synapses);
- fan-in per core: no Loihi 2 figure is public; Loihi 1's 4096 input axons per core (Davies et
  al., IEEE Micro 2018) is carried over. A layer whose fan-in exceeds it is split over
  ``ceil(fan_in / 4096)`` groups of cores whose partial sums are joined, as in the Loihi 1 map.

Per layer: ``max(ceil(n / 7812), ceil(synapses / 937,500)) * ceil(fan_in / 4096)`` cores, at
least 1; ``binding`` names the limit that set it. Chips: ``ceil(total cores / 128)``. The real
compiler packs differently (and both chip maxima cannot be reached at once), so this is a
capacity estimate, not a placement.
"""
from __future__ import annotations

import math

from spikeport.measure.mapping import _validate

CHIP_NEURON_CORES = 128
CHIP_EMBEDDED_CORES = 6
CHIP_MAX_NEURONS = 1_000_000
CHIP_MAX_SYNAPSES = 120_000_000
NEURONS_PER_CORE = CHIP_MAX_NEURONS // CHIP_NEURON_CORES        # 7812, assumed (even share)
SYNAPSES_PER_CORE = CHIP_MAX_SYNAPSES // CHIP_NEURON_CORES      # 937,500, assumed (even share)
FAN_IN_PER_CORE = 4096                                          # assumed: Loihi 1's input axons

SOURCE = ("Intel Labs, Taking Neuromorphic Computing to the Next Level with Loihi 2, technology "
          "brief, 2021: 128 neuron cores and 6 embedded cores per chip, up to 1M neurons and 120M "
          "synapses per chip")
ASSUMPTIONS = [
    f"ESTIMATE. Chip figures from {SOURCE}.",
    "Intel publishes no per-core neuron limit for Loihi 2: assumed the chip maximum shared evenly, "
    f"{NEURONS_PER_CORE} neurons per core.",
    "Intel publishes no per-core synapse limit for Loihi 2: assumed the chip maximum shared evenly, "
    f"{SYNAPSES_PER_CORE:,} nonzero synapses per core.",
    "Intel publishes no per-core fan-in (input axon) limit for Loihi 2: assumed Loihi 1's "
    f"{FAN_IN_PER_CORE} per core (Davies et al., IEEE Micro 2018); a wider fan-in splits the layer.",
    "Each limit is applied alone and layers do not share cores; the real compiler's packing differs.",
    "Sigma-delta, delta (input encoder) and integrator neurons are placed like LIF neurons, one neuron each "
    "(Intel publishes no per-kind neuron capacity); an input encoder has no synapses (the host drives it); "
    "synaptic delays use Loihi 2's per-synapse delay field and are not counted as extra synaptic memory.",
]


def map_to_loihi2(layers: list[dict]) -> dict:
    """Cores per layer, the binding limit, total cores and chips on Loihi 2 (an estimate).

    Args:
        layers: in network order, each ``{"name", "n_neurons", "fan_in" (presynaptic neurons),
            "n_synapses" (nonzero weights), "weight_bits" (1..8)}`` (ints), as for
            :func:`spikeport.measure.mapping.map_to_loihi`; ``fan_out`` is ignored.

    Returns:
        ``{"estimate": True, "layers": [{"name", "cores", "binding", "cores_by_constraint":
        {"neurons", "synapses", "fan_in"}, "neurons_per_core"}], "total_cores", "chips",
        "limits": {...}, "source", "assumptions": [str]}``.
    """
    from spikeport.errors import SpikeportError

    if not layers:
        raise SpikeportError("map_to_loihi2: no layers given")
    for i, layer in enumerate(layers):
        _validate(i, layer, "map_to_loihi2")
    mapped = [_map_layer(layer) for layer in layers]
    total = sum(m["cores"] for m in mapped)
    return {
        "estimate": True,
        "layers": mapped,
        "total_cores": total,
        "chips": math.ceil(total / CHIP_NEURON_CORES),
        "limits": {"neuron_cores_per_chip": CHIP_NEURON_CORES, "embedded_cores_per_chip": CHIP_EMBEDDED_CORES,
                   "neurons_per_chip": CHIP_MAX_NEURONS, "synapses_per_chip": CHIP_MAX_SYNAPSES,
                   "neurons_per_core (assumed)": NEURONS_PER_CORE,
                   "synapses_per_core (assumed)": SYNAPSES_PER_CORE,
                   "fan_in_per_core (assumed)": FAN_IN_PER_CORE},
        "source": SOURCE,
        "assumptions": list(ASSUMPTIONS),
    }


def _map_layer(layer: dict) -> dict:
    n, fan_in, nnz = (int(layer[k]) for k in ("n_neurons", "fan_in", "n_synapses"))
    nnz *= int(layer.get("synapses_per_weight", 1))  # a 16-bit weight: two synapses
    by = {"neurons": math.ceil(n / NEURONS_PER_CORE),
          "synapses": math.ceil(nnz / SYNAPSES_PER_CORE),
          "fan_in": math.ceil(fan_in / FAN_IN_PER_CORE)}
    base_name = "synapses" if by["synapses"] > by["neurons"] else "neurons"
    base = max(by[base_name], 1)
    splits = max(by["fan_in"], 1)
    binding = base_name if splits <= 1 else f"fan_in+{base_name}"
    return {"name": layer["name"], "cores": base * splits, "binding": binding, "kind": layer.get("kind", "lif"),
            "cores_by_constraint": by, "neurons_per_core": math.ceil(n / base)}
