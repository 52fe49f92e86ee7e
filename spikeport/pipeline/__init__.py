"""The stages behind the CLI, as a Python API: deploy, parity, energy, over a run folder or a graph.

A *run folder* (names in :mod:`spikeport.files.runfolder`) holds ``model.safetensors`` +
``config.json`` (from ``train``) or ``source.nir`` + ``import.json`` (from ``import``), ``model.nir``
(from ``export`` / ``import``) and the JSON reports. Parity holds a reference
(:mod:`spikeport.pipeline.reference`) against the backends running ``model.nir`` alone.
"""
from spikeport.pipeline.backends import BACKENDS, BackendRun, parse_backends, run_backend
from spikeport.pipeline.deploy_stage import deploy
from spikeport.pipeline.energy_stage import energy
from spikeport.pipeline.inputs import check_samples, graph_inputs, test_inputs
from spikeport.pipeline.parity_stage import parity, save_spike_sample

__all__ = ["BACKENDS", "BackendRun", "parse_backends", "run_backend", "deploy", "energy", "check_samples",
           "graph_inputs", "test_inputs", "parity", "save_spike_sample"]
