"""The parity reference of an imported run: the producer's float simulation of ``source.nir``.

An imported run has no checkpoint; its reference is the float simulator
(:func:`spikeport.importer.simulate.simulate`) running ``source.nir`` with the producer's conventions
and the dt recorded in ``import.json``. The backends (emulator, Lava) run ``model.nir``. Quantization
makes float and integer spikes differ slightly, so the reference is not ``exact``: parity gates on
backend spikes against the integer reference (the emulator) and on prediction agreement
(``MIN_AGREEMENT`` by default). Without labels only agreement is reported, never an accuracy.
parity.json's ``scored_samples`` says what was scored: the file, the samples' indices in the import's
``--inputs`` (the run's own inputs), the import's calibration indices, and how many scored samples equal
a calibration (or fine-tuning) sample, compared by value (``runio.shared_samples``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.files import runfolder
from spikeport.importer import conventions, runio
from spikeport.importer.run import load_source, reference
from spikeport.measure.parity import RefChunk, Reference

MIN_AGREEMENT = 0.99


class ImportedReference(Reference):
    """Float simulation of an imported run's source graph (see the module docstring)."""

    exact = False
    min_agreement = MIN_AGREEMENT

    def __init__(self, run_dir: str | Path, net, *, inputs: str | Path | None = None,
                 labels: str | Path | None = None):
        self.run_dir, self.net, self.files = Path(run_dir), net, (inputs, labels)
        self.fg, self.prod, self.dt, self.info = load_source(run_dir)
        self.names = [n.decode() if isinstance(n, bytes) else str(n)
                      for n in np.asarray(net.meta.get("source_layers", [])).ravel()]
        if len(self.names) != len(net.populations):
            raise SpikeportError(f"{self.run_dir / runfolder.MODEL_NIR}: metadata 'source_layers' does not match "
                                 "its layers")
        self.dataset = f"imported from {self.prod.name} (dt = {self.dt:g} s)"
        self.describe = f"float simulation of {runio.SOURCE} with {self.prod.name}'s conventions"
        self.x = None

    def inputs(self, net, samples, before_encoding=None):
        x_int, y, self.x = runio.run_inputs(net, self.run_dir / runfolder.MODEL_NIR, *self.files, samples)
        if before_encoding is not None:
            before_encoding(x_int.shape[1])
        return x_int, y

    def run(self, x_int, samples):
        spikes, pred, readout = reference(self.fg, self.prod, self.dt, self.x[:, samples], self.names, readout=True)
        return RefChunk(spikes, pred, pred, {"float reference": readout})

    def samples(self) -> dict:
        """parity.json's ``scored_samples`` (module docstring); call after the inputs were loaded."""
        rec, ft = self.info.get("samples") or {}, (self.info.get("finetune") or {}).get("samples") or {}
        given, n = self.files[0] is not None, int(self.x.shape[1])
        out = {"scored": n, "file": str(self.files[0]) if given else f"the run's {runio.INPUTS}"}
        if not given:
            idx = (ft.get("heldout_indices") or ft.get("train_indices")) if ft else rec.get("scored_indices")
            out["scored_indices"] = None if idx is None else idx[:n]
            out["indices_of"] = ft.get("indices_of") or rec.get("inputs")
        out["calibration_indices"] = rec.get("calibration_indices")
        for key, name in (("calibrated_among_scored", runfolder.CALIBRATION_INPUTS),
                          ("trained_among_scored", runfolder.TRAIN_INPUTS)):
            if (self.run_dir / name).is_file():
                other, _ = runio.load_inputs(self.run_dir / name, None, self.net.input_shape, self.net.time_steps)
                out[key] = runio.shared_samples(self.x, other)
        return out

    def report(self) -> dict:
        timing = conventions.timing_words(self.prod)
        bits = self.info.get("weight_bits")
        return {"imported": True, "approximations": self.info.get("approximations", []),
                "scored_samples": self.samples(),
                "conventions": {"producer": self.prod.name, "reset": self.prod.reset, "reset_timing": timing},
                "deployment": {"readout": str(self.info.get("readout", "spike_count")),
                               "weight_bits": int(bits["option"]) if isinstance(bits, dict) else 8},
                "conventions_hint": f"the float reference applies {self.prod.name}'s conventions with --reset "
                                    f"{self.prod.reset} --reset-timing {timing}; a graph trained otherwise needs "
                                    "re-importing with --reset / --reset-timing"}
