"""The reference side of parity: what the deployed graph is held against.

A :class:`~spikeport.measure.parity.Reference` supplies the inputs (test split or ``.npy`` files) and, for any chunk of them,
its spikes per layer and its predictions. :func:`spikeport.pipeline.parity_stage.parity` takes one as a
parameter and never asks where it came from. Two kinds exist:

* :class:`CheckpointReference` (here): a trained run's checkpoint, whose Loihi-integer torch
  forward must equal every backend spike for spike (``exact``);
* :class:`spikeport.importer.reference.ImportedReference`: an imported run's source graph simulated
  in float with the producer's conventions; quantization lets its spikes differ, so the gate is
  prediction agreement (and backend against backend spike for spike);
* :class:`spikeport.importer.finetuned_reference.FinetunedReference`: an imported run fine-tuned on
  Loihi integers: its checkpoint's integer forward (exact), the producer measured beside it.

:func:`for_run` picks the one a run folder needs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.readout import classifies, predict
from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.measure.parity import RefChunk, Reference
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

        if self.cfg.neuron == "sigma-delta":
            return self._run_sigma_delta(x_int)
        with torch.no_grad():
            ref = [s.numpy() for s in self.model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
            xf = torch.from_numpy(float_view(x_int, self.cfg.encoder))
            float_out = self.model(xf, qat=False)[-1].numpy()
        self._check_layers(ref)
        if self.net.regression:  # a membrane readout: the output integrator's voltage, it never spikes
            values, ref[-1] = ref[-1], np.zeros(ref[-1].shape, bool)
            return RefChunk(ref, predict(ref[-1], self.net.meta, values), predict(float_out > 0, self.net.meta, float_out),
                            {"reference": values[-1], "float": float_out[-1]}, values=values)
        return RefChunk(ref, predict(ref[-1], self.net.meta), predict(float_out > 0, self.net.meta),
                        {"reference": ref[-1].sum(axis=0), "float": (float_out > 0).sum(axis=0)})

    def _run_sigma_delta(self, x_int) -> RefChunk:
        """A sigma-delta checkpoint: every population's payloads (the input's first) and the output's values
        per step from its integer forward; classes by the graph's readout (the float model's: its logits at
        the last step)."""
        import torch

        from spikeport.data import float_view

        with torch.no_grad():
            ref = [s.numpy() for s in self.model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
            logits = self.model(torch.from_numpy(float_view(x_int, self.cfg.encoder)), qat=False).logits[-1]
        self._check_layers(ref)
        return RefChunk(ref, predict(ref[-1], self.net.meta), logits.argmax(dim=1).numpy(), {}, values=ref[-1])

    def _check_layers(self, ref: list) -> None:
        if [s.shape[2] for s in ref] != [p.size for p in self.net.populations]:
            raise SpikeportError(f"{self.run_dir}: the graph does not match the checkpoint's layers; run `spikeport "
                                 f"export {self.run_dir}` again")


class NetxReference(Reference):
    """An imported netx file (``source.net``) run by lava-dl's own netx loader on Lava fixed_pt (the
    supervised child): the run's ``model.nir`` holds the same integers, so every backend must equal it
    spike for spike (``exact``). Inputs: ``--inputs`` / ``--labels`` or the run's stored ones."""

    exact = True

    def __init__(self, run_dir: str | Path, net: LoihiNet, *, inputs=None, labels=None,
                 timeout_s: float | None = None):
        from spikeport.nirfmt.netx_net import run_info

        self.run_dir, self.net, self.files, self.timeout_s = Path(run_dir), net, (inputs, labels), timeout_s
        self.source = self.run_dir / runfolder.NETX_SOURCE
        if not self.source.is_file():
            raise SpikeportError(f"{self.source}: file not found (the netx file this run was imported from)")
        info = run_info(self.run_dir)
        self.options = {"spike_exp": info.get("spike_exp"), "message_bits": info.get("input_bits"),
                        "output": info.get("output")}
        self.dataset = "imported from a lava-dl netx file"
        self.describe = f"netx-on-Lava run of {runfolder.NETX_SOURCE} (lava-dl's own loader, fixed_pt)"
        self.last = None  # (x_int chunk, BackendRun): the netx backend of this run is this reference

    def inputs(self, net, samples, before_encoding=None):
        from spikeport.importer.netx_import import netx_inputs

        inputs, labels = self.files
        if inputs is None:
            inputs = self.run_dir / runfolder.INPUTS
            if not inputs.is_file():
                raise SpikeportError(f"{self.run_dir}: no inputs: pass --inputs FILE.npy or import with --inputs")
            if labels is None and (self.run_dir / runfolder.LABELS).is_file():
                labels = self.run_dir / runfolder.LABELS
        x_int, y, _ = netx_inputs(net, inputs, labels, net.time_steps)
        if samples is not None:
            x_int, y = x_int[:, :samples], (None if y is None else y[:samples])
        if before_encoding is not None:
            before_encoding(x_int.shape[1])
        return x_int, y

    def run(self, x_int, samples):
        import time

        from spikeport.deploy.supervise import DEFAULT_TIMEOUT_S, run_netx
        from spikeport.pipeline.backends import BackendRun

        t0 = time.perf_counter()
        spikes, values = run_netx(self.source, x_int, timeout_s=self.timeout_s or DEFAULT_TIMEOUT_S, with_values=True,
                                  **self.options)
        self.last = (x_int, BackendRun(spikes, time.perf_counter() - t0, values))
        pred = predict(spikes[-1], self.net.meta, values) if classifies(self.net) else np.zeros(x_int.shape[1], np.int64)
        return RefChunk(spikes, pred, pred, {"reference": np.count_nonzero(spikes[-1], axis=0)}, values=values)


def for_run(run_dir: str | Path, net: LoihiNet, *, inputs: str | Path | None = None,
            labels: str | Path | None = None) -> Reference:
    """The reference a run folder needs: its source graph when imported (a peer's NIR graph, or a netx
    file), else its checkpoint."""
    if (Path(run_dir) / runfolder.NETX_IMPORT).is_file():
        return NetxReference(run_dir, net, inputs=inputs, labels=labels)
    if runfolder.is_imported(run_dir):
        from spikeport.importer import finetune_net

        if finetune_net.is_finetuned(run_dir):  # fine-tuned on Loihi integers: its checkpoint, exact
            from spikeport.importer.finetuned_reference import FinetunedReference

            return FinetunedReference(run_dir, net, inputs=inputs, labels=labels)
        from spikeport.importer.reference import ImportedReference

        return ImportedReference(run_dir, net, inputs=inputs, labels=labels)
    if inputs is not None or labels is not None:
        raise SpikeportError("--inputs / --labels are for imported runs; a trained run uses its dataset's test split")
    return CheckpointReference(run_dir, net)
