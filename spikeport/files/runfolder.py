"""The file names of a run folder, in one place.

A run folder is what every stage reads and writes: ``spikeport train`` writes the checkpoint,
``export`` the graph files, ``import`` a peer's graph turned into the same form, and ``deploy``,
``parity``, ``energy`` and ``report`` their reports beside them. Code that needs a name imports it
from here; nothing else spells one.
"""
from __future__ import annotations

from pathlib import Path

# written by `spikeport train` (or `convert-checkpoint`)
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
CHECKPOINT_DIR = "checkpoint"  # per-epoch state for --resume
# graph files, written by `spikeport export` or `spikeport import`
MODEL_NIR = "model.nir"
MODEL_ONNX = "model.onnx"
MODEL_NETX = "model.net"
# written by `spikeport import` only: the peer's graph and the inputs its float reference runs on
IMPORT = "import.json"
SOURCE = "source.nir"
INPUTS = "inputs.npy"  # the samples the import scored (never its calibration samples)
LABELS = "labels.npy"
CALIBRATION_INPUTS = "calibration_inputs.npy"  # the samples the import calibrated its quantizer on
CALIBRATION_LABELS = "calibration_labels.npy"
# written by fine-tuning an imported run (importer.finetune): the samples it trained on; inputs.npy /
# labels.npy then hold the held-out ones (the checkpoint is WEIGHTS + CONFIG of format
# "spikeport-imported-finetune")
TRAIN_INPUTS = "train_inputs.npy"
TRAIN_LABELS = "train_labels.npy"
# written by `spikeport import MODEL.net` (a lava-dl netx file): the file itself and what was read from it
NETX_SOURCE = "source.net"
NETX_IMPORT = "netx_import.json"
# reports
DEPLOY = "deploy.json"
PREDICTIONS = "predictions.npz"
PARITY = "parity.json"
SPIKE_SAMPLE = "parity_spikes.npz"  # one sample's spikes per layer and side, beside parity.json
PARITY_OUTPUTS = "parity_outputs.npz"
ENERGY = "energy.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORTS = (CONFIG, METRICS, PARITY, ENERGY)  # the JSON files `spikeport report` reads


def is_imported(run_dir: str | Path) -> bool:
    """True for a folder written by `spikeport import` (its reference is the peer's graph, not a checkpoint)."""
    return (Path(run_dir) / IMPORT).is_file()


def model_nir(target: str | Path) -> Path:
    """A run folder's ``model.nir``, or ``target`` itself when it is a file."""
    target = Path(target)
    return target / MODEL_NIR if target.is_dir() else target
