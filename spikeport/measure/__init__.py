"""Measurement side of spikeport: operation counts, energy per sample, Loihi resource mapping.

numpy/scipy/pydantic only: nothing here imports torch or lava.
"""
from spikeport.measure.energy import estimate_energy, load_profiles
from spikeport.measure.mapping import map_to_loihi
from spikeport.measure.mapping_loihi2 import map_to_loihi2
from spikeport.measure.ops import OpLayer, count_ops

__all__ = ["OpLayer", "count_ops", "estimate_energy", "load_profiles", "map_to_loihi", "map_to_loihi2"]
