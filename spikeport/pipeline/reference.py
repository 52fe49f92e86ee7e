"""The reference side of parity: what the deployed graph is held against.

A :class:`~spikeport.measure.parity.Reference` supplies the inputs (test split or ``.npy`` files) and, for any chunk of them,
its spikes per layer and its predictions. :func:`spikeport.pipeline.parity_stage.parity` takes one as a
parameter and never asks where it came from. Two kinds exist:

* :class:`CheckpointReference` (here): a trained run's checkpoint, whose Loihi-integer torch
  forward must equal every backend spike for spike (``exact``);
* :class:`spikeport.importer.reference.ImportedReference`: an imported run's source graph simulated
  in float with the producer's conventions; quantization lets its spikes differ, so the gate is
  prediction agreement (and backend against backend spike for spike).

:func:`for_run` picks the one a run folder needs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.readout import predict
from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.measure.parity import Reference
from spikeport.pipeline.inputs import test_inputs


class CheckpointReference(Reference):
    """A trained run's checkpoint: its Loihi-integer forward (exact) and its float model (accuracy)."""

    exact = True

    def __init__(self, run_dir: str | Path, net: LoihiNet):
        from spikeport.train import checkpoint

        self.run_dir, self.net = Path(run_dir), net
        self.model, self.cfg, _ = checkpoint.load(run_dir)
        self.dataset = self.cfg.data
        self.describe = f"Loihi-integer torch forward of {self.run_dir / runfolder.WEIGHTS}"

    def inputs(self, net, samples, before_encoding=None):
        x_int, y, _ = test_inputs(net, self.cfg.data, self.cfg.data_dir, samples, self.cfg.seed, before_encoding)
        return x_int, y

    def run(self, x_int, samples):
        import torch

        from spikeport.data import float_view

        with torch.no_grad():
            ref = [s.numpy() for s in self.model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
            xf = torch.from_numpy(float_view(x_int, self.cfg.encoder))
            float_out = self.model(xf, qat=False)[-1].numpy() > 0
        if [s.shape[2] for s in ref] != [p.size for p in self.net.populations]:
            raise SpikeportError(f"{self.run_dir / runfolder.MODEL_NIR} does not match the checkpoint's layers; "
                                 f"run `spikeport export {self.run_dir}` again")
        return ref, predict(ref[-1], self.net.meta), predict(float_out, self.net.meta)


def for_run(run_dir: str | Path, net: LoihiNet, *, inputs: str | Path | None = None,
            labels: str | Path | None = None) -> Reference:
    """The reference a run folder needs: its source graph when imported, else its checkpoint."""
    if runfolder.is_imported(run_dir):
        from spikeport.importer.reference import ImportedReference

        return ImportedReference(run_dir, net, inputs=inputs, labels=labels)
    if inputs is not None or labels is not None:
        raise SpikeportError("--inputs / --labels are for imported runs; a trained run uses its dataset's test split")
    return CheckpointReference(run_dir, net)
