"""Datasets and input encoders (numpy only: no torch, no lava).

``load_dataset(name, data_dir, seed=, n_bins=, limit=) -> Dataset`` and
``encode(x, T, method, seed=) -> [T, B, ...]`` integer arrays for the Loihi side.
"""
from spikeport.data.datasets import (
    DATASETS,
    FASHION_MNIST_DIR,
    TEMPORAL,
    Dataset,
    bin_events,
    load_dataset,
    read_nmnist_events,
)
from spikeport.data.encode import (
    ENCODERS,
    EVENTS,
    INPUT_LEVELS,
    encode,
    float_view,
    input_unit,
    is_graded,
    quantize_input,
)

__all__ = [
    "DATASETS",
    "ENCODERS",
    "EVENTS",
    "FASHION_MNIST_DIR",
    "INPUT_LEVELS",
    "TEMPORAL",
    "Dataset",
    "bin_events",
    "encode",
    "float_view",
    "input_unit",
    "is_graded",
    "load_dataset",
    "quantize_input",
    "read_nmnist_events",
]
