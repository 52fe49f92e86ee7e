"""How many Loihi 1 cores (and chips) a network needs, and which core resource sets that number.

A Loihi 1 neurocore holds at most 1024 neurons (compartments), 4096 input axons, 4096 output
axons and 128 KiB of synaptic memory; a chip has 128 cores (Davies et al., IEEE Micro 2018).

Model, per layer (a lower bound: a real compiler's packing can only need more):

- neurons: ``ceil(n_neurons / 1024)`` cores.
- synaptic memory: ``ceil(bits / (128 KiB * 8))`` cores, with the synapses stored in the cheaper
  of two formats: dense, ``weight_bits`` per entry of the full ``n_neurons x fan_in`` block
  (zeros included), or sparse, ``weight_bits + 8`` index bits per nonzero synapse (16 bits for
  8-bit weights). ASSUMPTION: Loihi's real synapse encodings (and their delay/tag fields) vary;
  these two bounds are what we state.
- output axons: each neuron needs one output axon per destination core (``fan_out``), so
  ``ceil(n_neurons * fan_out / 4096)`` cores.
- input axons: every core of a densely connected layer needs all ``fan_in`` presynaptic axons.
  Splitting neurons does not reduce that, so ``fan_in > 4096`` multiplies the core count by
  ``ceil(fan_in / 4096)`` (the input is split over cores whose partial sums are joined by
  multi-compartment dendrites).

The layer needs ``max(neurons, synaptic memory, output axons) * input splits`` cores; ``binding``
names the constraint that set it.
"""
from __future__ import annotations

import math
import numbers

from spikeport.errors import SpikeportError

NEURONS_PER_CORE = 1024
INPUT_AXONS_PER_CORE = 4096
OUTPUT_AXONS_PER_CORE = 4096
SYNAPTIC_MEMORY_BITS = 128 * 1024 * 8
CORES_PER_CHIP = 128
SPARSE_INDEX_BITS = 8

_FIELDS = ("name", "n_neurons", "fan_in", "n_synapses", "weight_bits")


def map_to_loihi(layers: list[dict]) -> dict:
    """Cores per layer, the binding constraint, total cores and chips on Loihi 1.

    Args:
        layers: in network order, each ``{"name", "n_neurons", "fan_in" (presynaptic neurons,
            i.e. input axons), "fan_out" (output axons per neuron = destination cores its spikes
            reach), "n_synapses" (nonzero weights), "weight_bits" (1..8)}``. ``fan_out`` may be
            omitted or None: it is then the next layer's core count (a dense projection reaches
            every core of the next layer), and 1 for the last layer (spikes to the host). Optional
            ``"synapses_per_weight"``: 2 for 16-bit weights (two 8-bit synapses each), else 1.

    Returns:
        ``{"layers": [{"name", "cores", "binding", "cores_by_constraint": {...},
        "synapse_format", "synaptic_memory_bytes", "neurons_per_core", "fan_out"}],
        "total_cores", "chips", "limits": {...}, "assumptions": [str]}``.
    """
    if not layers:
        raise SpikeportError("map_to_loihi: no layers given")
    for i, layer in enumerate(layers):
        _validate(i, layer)
    mapped: list[dict] = []
    next_cores = None
    for layer in reversed(layers):  # fan_out may depend on the next layer's cores
        fan_out = layer.get("fan_out")
        if fan_out is None:
            fan_out = 1 if next_cores is None else next_cores
        entry = _map_layer(layer, int(fan_out))
        mapped.append(entry)
        next_cores = entry["cores"]
    mapped.reverse()
    total = sum(m["cores"] for m in mapped)
    return {
        "layers": mapped,
        "total_cores": total,
        "chips": math.ceil(total / CORES_PER_CHIP),
        "limits": {"neurons_per_core": NEURONS_PER_CORE, "input_axons_per_core": INPUT_AXONS_PER_CORE,
                   "output_axons_per_core": OUTPUT_AXONS_PER_CORE,
                   "synaptic_memory_bytes_per_core": SYNAPTIC_MEMORY_BITS // 8,
                   "cores_per_chip": CORES_PER_CHIP},
        "assumptions": [
            "Loihi 1 core limits from Davies et al., IEEE Micro 2018.",
            f"Synapse storage: the cheaper of dense (weight_bits per entry of n_neurons x fan_in) "
            f"and sparse (weight_bits + {SPARSE_INDEX_BITS} index bits per nonzero synapse).",
            "One output axon per neuron per destination core; a dense projection reaches every "
            "core of the next layer; the last layer sends to the host over one axon.",
            "Each constraint is applied alone (a lower bound on the cores a compiler would use); "
            "layers do not share cores.",
            "Loihi 2 (8-bit weights, 24-bit state, up to 1M neurons / 120M synapses per chip) has "
            "different core limits: see the Loihi 2 map (an estimate, spikeport.measure.mapping_loihi2).",
        ],
    }


def _map_layer(layer: dict, fan_out: int) -> dict:
    n, fan_in, nnz, bits = (int(layer[k]) for k in ("n_neurons", "fan_in", "n_synapses", "weight_bits"))
    per = int(layer.get("synapses_per_weight", 1))  # a 16-bit weight: two 8-bit synapses
    dense_bits = n * fan_in * bits * per
    sparse_bits = nnz * per * (bits + SPARSE_INDEX_BITS)
    fmt, mem_bits = ("dense", dense_bits) if dense_bits <= sparse_bits else ("sparse", sparse_bits)
    by = {
        "neurons": math.ceil(n / NEURONS_PER_CORE),
        "synaptic_memory": math.ceil(mem_bits / SYNAPTIC_MEMORY_BITS),
        "output_axons": math.ceil(n * fan_out / OUTPUT_AXONS_PER_CORE),
        "input_axons": math.ceil(fan_in / INPUT_AXONS_PER_CORE),
    }
    base_name = max(("neurons", "synaptic_memory", "output_axons"), key=lambda k: by[k])
    base = max(by[base_name], 1)
    cores = base * max(by["input_axons"], 1)
    binding = base_name if by["input_axons"] <= 1 else f"input_axons+{base_name}"
    return {
        "name": layer["name"], "cores": cores, "binding": binding, "cores_by_constraint": by,
        "synapse_format": fmt, "synaptic_memory_bytes": math.ceil(mem_bits / 8),
        "neurons_per_core": math.ceil(n / base), "fan_out": fan_out,
    }


def _validate(i: int, layer: dict, who: str = "map_to_loihi") -> None:
    if not isinstance(layer, dict):
        raise SpikeportError(f"{who}: layer {i} must be a dict, got {type(layer).__name__}")
    missing = [k for k in _FIELDS if k not in layer]
    name = layer.get("name", f"#{i}")
    if missing:
        raise SpikeportError(f"{who}: layer {name!r} is missing {missing}")
    for key in ("n_neurons", "fan_in", "n_synapses", "weight_bits") + (
            ("fan_out",) if layer.get("fan_out") is not None else ()):
        value = layer[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise SpikeportError(f"{who}: layer {name!r}: {key} must be a non-negative "
                                 f"integer, got {value!r}")
    if not 1 <= layer["weight_bits"] <= 8:
        raise SpikeportError(f"{who}: layer {name!r}: weight_bits must be 1..8 on Loihi, "
                             f"got {layer['weight_bits']}")
    if layer.get("synapses_per_weight", 1) not in (1, 2):
        raise SpikeportError(f"{who}: layer {name!r}: synapses_per_weight must be 1 or 2 (a 16-bit weight), "
                             f"got {layer['synapses_per_weight']!r}")
    if layer["n_synapses"] > layer["n_neurons"] * layer["fan_in"]:
        raise SpikeportError(f"{who}: layer {name!r}: n_synapses {layer['n_synapses']} "
                             f"exceeds n_neurons x fan_in")
