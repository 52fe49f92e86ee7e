"""The parity reference of a fine-tuned imported run: its checkpoint's Loihi-integer forward (exact),
with the producer's float simulation of ``source.nir`` beside it.

A run fine-tuned by :mod:`spikeport.importer.finetune` holds a checkpoint (``model.safetensors`` +
``config.json`` of format ``spikeport-imported-finetune``). Its integer forward
(:func:`spikeport.importer.finetune_net.load`, ``forward_int``) must equal every backend spike for
spike, as a trained run's checkpoint does (``exact``). The producer is still measured: per chunk, the
float simulation of ``source.nir`` with the producer's conventions gives its predictions
(``float_pred``: parity.json's ``float_accuracy`` is the producer's accuracy) and parity.json gains
``producer_agreement`` (integer reference vs producer predictions, over every sample parity ran) and
the fine-tuning's before / after figures from import.json.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeport.core.readout import predict_net, reads_values
from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.importer import finetune_net, runio
from spikeport.importer.reference import ImportedReference
from spikeport.importer.run import reference
from spikeport.measure.parity import RefChunk


class FinetunedReference(ImportedReference):
    """A fine-tuned imported run (see the module docstring): the source graph, its conventions and the
    inputs as for any imported run, but the exact reference is the fine-tuned checkpoint."""

    exact = True
    min_agreement = None

    def __init__(self, run_dir: str | Path, net, *, inputs: str | Path | None = None,
                 labels: str | Path | None = None):
        super().__init__(run_dir, net, inputs=inputs, labels=labels)
        self.model, _ = finetune_net.load(run_dir)
        if reads_values(net.meta):  # --readout current_sum: the output integrator (importer.integrator)
            self.model.layers[-1].make_integrator(net.time_steps)
        if [layer.spec.n_out for layer in self.model.layers] != [p.size for p in net.populations]:
            raise SpikeportError(f"{self.run_dir / runfolder.MODEL_NIR}: its layers do not match the fine-tuned "
                                 f"checkpoint {runfolder.WEIGHTS}")
        self.dataset = f"imported from {self.prod.name} (dt = {self.dt:g} s), fine-tuned on Loihi integers"
        self.describe = (f"Loihi-integer torch forward of the fine-tuned {runfolder.WEIGHTS}; float accuracy: "
                         f"{self.prod.name}'s float simulation of {runio.SOURCE}")
        self.agree = [0, 0]

    def run(self, x_int, samples):
        flat = torch.from_numpy(np.asarray(x_int, np.int64).reshape(x_int.shape[0], x_int.shape[1], -1))
        with torch.no_grad():
            ref = [s.numpy() for s in self.model.forward_int(flat)]
        _, prod_pred, readout = reference(self.fg, self.prod, self.dt, self.x[:, samples], self.names, readout=True)
        values = None
        if self.model.layers[-1].integrator_steps:  # its voltage per step; it never spikes
            values, ref[-1] = ref[-1], np.zeros(ref[-1].shape, bool)
        pred = predict_net(self.net, ref, values)
        self.agree[0] += int(np.sum(pred == prod_pred))
        self.agree[1] += len(pred)
        mine = ref[-1].sum(axis=0) if values is None else values[-1]
        return RefChunk(ref, pred, prod_pred, {"reference": mine, f"{self.prod.name} float reference": readout},
                        values=values)

    def report(self) -> dict:
        ft = self.info.get("finetune", {})
        return {**super().report(), "finetuned": True,
                "producer_agreement": self.agree[0] / self.agree[1] if self.agree[1] else None,
                "finetune": {k: ft.get(k) for k in ("epochs", "target", "train_samples", "heldout_samples",
                                                    "measured_on", "before", "after")}}
