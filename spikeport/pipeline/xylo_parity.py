"""``spikeport parity`` of a Xylo run (a folder holding ``model.xylo.json``): its reference against the
``xylo`` backend (SynSense's xylosim) and the ``emulator`` (spikeport's batched Xylo emulator), spike count for
spike count, and the two backends against each other in every recorded state (Vmem, Isyn, Isyn2 of the hidden
neurons, Vmem and Isyn of the outputs) at every step.

References: a trained run's checkpoint (its Xylo-integer forward: exact, every spike compared), or an imported
graph's float simulation with the producer's conventions (:class:`spikeport.importer.xylo_import.XyloImportReference`:
prediction agreement gated, the backends against each other exactly).

The gate: spike mismatches <= ``max_mismatches`` (every exact pair), zero state mismatches between the backends,
and for a float reference each backend's prediction agreement >= ``min_agreement``. The chip limits are checked
first (one line each, exit 2): xylosim itself checks none.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core.readout import predict
from spikeport.core.xylo_net import POPULATIONS, STATES, XyloNet
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.measure import parity as parity_mod
from spikeport.nirfmt import xylo_spec
from spikeport.pipeline.inputs import INPUT_SEED, check_samples

BACKENDS = ("xylo", "emulator")
CHUNK = 256  # samples per chunk (a full 1000-neuron chip over 100 steps: ~0.5 GB of recorded states)
Progress = Callable[[str, int, int], None]


def parse(spec: str) -> list[str]:
    names = list(dict.fromkeys(b.strip() for b in spec.split(",") if b.strip()))
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        raise SpikeportError(f"a Xylo run runs on {', '.join(BACKENDS)} (comma-separated), got {spec!r}")
    return names


def load_net(run_dir: Path) -> XyloNet:
    """The run's validated Xylo specification; every chip limit it breaks refused in one line each."""
    net = xylo_spec.read(run_dir / runfolder.MODEL_XYLO)
    bad = net.violations()
    if bad:
        raise SpikeportError(f"{run_dir / runfolder.MODEL_XYLO} does not fit Xylo Audio 2: " + "; ".join(bad))
    return net


class XyloCheckpointReference:
    """A run trained with ``target = "xylo-audio2"``: its checkpoint's Xylo-integer forward (exact) and float model."""

    exact = True
    min_agreement = None

    def __init__(self, run_dir: Path, net: XyloNet):
        from spikeport.train import checkpoint

        self.model, self.cfg, _ = checkpoint.load(run_dir)
        self.net, self.dataset = net, self.cfg.data
        self.describe = f"Xylo-integer forward of {run_dir / runfolder.WEIGHTS}"

    def inputs(self, samples: int | None) -> tuple[np.ndarray, np.ndarray]:
        from spikeport.data import encode, load_dataset

        ds = load_dataset(self.cfg.data, self.cfg.data_dir, seed=self.cfg.seed, n_bins=self.net.time_steps)
        x, y = (ds.x_test[:samples], ds.y_test[:samples]) if samples else (ds.x_test, ds.y_test)
        return encode(np.asarray(x), self.net.time_steps, self.cfg.encoder, seed=INPUT_SEED), np.asarray(y)

    def run(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(integer spike counts per population, predictions, float model's predictions)."""
        import torch

        from spikeport.data import float_view

        with torch.no_grad():
            spikes = [s.numpy() for s in self.model.forward_int(torch.from_numpy(x.astype(np.int64)))]
            out = self.model(torch.from_numpy(float_view(x, self.cfg.encoder)))[-1].numpy() > 0
        meta = {"readout": "spike_count"}
        return spikes, predict(spikes[-1] > 0, meta), predict(out, meta)

    def report(self) -> dict:
        return {}


def reference_for(run_dir: Path, net: XyloNet, inputs=None, labels=None):
    if runfolder.is_imported(run_dir):
        from spikeport.importer.xylo_import import XyloImportReference

        return XyloImportReference(run_dir, net, inputs=inputs, labels=labels)
    if inputs is not None or labels is not None:
        raise SpikeportError("--inputs / --labels are for imported runs; a trained run uses its dataset's test split")
    return XyloCheckpointReference(run_dir, net)


def run_backend(net: XyloNet, x: np.ndarray, backend: str, record_states: bool):
    if backend == "xylo":
        from spikeport.deploy import xylo_sim

        return xylo_sim.run(net, x, record_states)
    from spikeport.deploy import xylo_emulator

    return xylo_emulator.run(net, x, record_states)


class _Tally:
    """Mismatching spike counts of one pair of sides, per population, and the first divergence."""

    def __init__(self, net: XyloNet):
        self.rows = [{"layer": n, "mismatches": 0, "spikes_a": 0, "spikes_b": 0, "neurons": s}
                     for n, s in zip(POPULATIONS, net.sizes)]
        self.first = None

    def add(self, a: list[np.ndarray], b: list[np.ndarray], offset: int) -> None:
        for i, (sa, sb) in enumerate(zip(a, b)):
            diff = np.asarray(sa) != np.asarray(sb)
            row = self.rows[i]
            row["mismatches"] += int(diff.sum())
            row["spikes_a"] += int(np.asarray(sa, np.int64).sum())
            row["spikes_b"] += int(np.asarray(sb, np.int64).sum())
            if diff.any():
                s, t, n = np.argwhere(diff.transpose(1, 0, 2))[0]
                cand = (int(s) + offset, int(t), i, int(n), int(sa[t, s, n]), int(sb[t, s, n]))
                self.first = min(self.first, cand) if self.first else cand

    def result(self) -> dict:
        first = None
        if self.first:
            s, t, i, n, a, b = self.first
            first = {"layer": POPULATIONS[i], "layer_index": i, "sample": s, "step": t, "neuron": n,
                     "a_spikes": a, "b_spikes": b}
        return {"spike_mismatches": sum(r["mismatches"] for r in self.rows), "per_layer": self.rows,
                "first_divergence": first}


def parity(run_dir: str | Path, *, backend: str = "xylo,emulator", samples: int | None = None,
           max_mismatches: int | None = 0, out: str | Path | None = None, inputs: str | Path | None = None,
           labels: str | Path | None = None, min_agreement: float | None = None,
           progress: Progress | None = None) -> dict:
    """Compare the run's reference with each Xylo backend (module docstring); write parity.json; raise
    :class:`ParityFailure` (after writing it) when the gate fails."""
    run_dir = Path(run_dir)
    check_samples(samples)
    backends = parse(backend)
    net = load_net(run_dir)
    ref = reference_for(run_dir, net, inputs, labels)
    x, y = ref.inputs(samples)
    try:
        x = np.asarray(x)
        from spikeport.deploy.xylo_emulator import check_input

        check_input(net, x)
    except ValueError as err:
        raise SpikeportError(f"{run_dir}: {err}") from None
    n = x.shape[1]
    pairs = ([("reference", b) for b in backends] if ref.exact else []) + \
        ([(backends[0], backends[1])] if len(backends) > 1 else [])
    tallies = {f"{a}-{b}": _Tally(net) for a, b in pairs}
    states_off = {k: 0 for k in STATES} if len(backends) > 1 else None
    preds = {b: [] for b in ("reference", "float", *backends)}
    seconds = {b: 0.0 for b in backends}
    sample0 = None
    for lo in range(0, n, CHUNK):
        xs = x[:, lo:lo + CHUNK]
        ref_spikes, ref_pred, float_pred = ref.run(xs)
        preds["reference"].append(ref_pred)
        preds["float"].append(float_pred)
        runs = {}
        for b in backends:
            t0 = time.perf_counter()
            runs[b] = run_backend(net, xs, b, states_off is not None)
            seconds[b] += time.perf_counter() - t0
            preds[b].append(predict(runs[b].spikes[-1] > 0, {"readout": "spike_count"}))
            if progress:
                progress(b, min(n, lo + CHUNK), n)
        sides = {"reference": ref_spikes, **{b: r.spikes for b, r in runs.items()}}
        if sample0 is None and ref_spikes is not None:  # sample 0 of every side, for report.html's raster
            sample0 = {k: [np.asarray(a)[:, 0] > 0 for a in v] for k, v in sides.items()}
        for a, b in pairs:
            tallies[f"{a}-{b}"].add(sides[a], sides[b], lo)
        if states_off is not None:
            for k in STATES:
                states_off[k] += int((runs[backends[0]].states[k] != runs[backends[1]].states[k]).sum())
    preds = {k: np.concatenate(v) for k, v in preds.items()}
    result = _result(net, ref, backends, tallies, states_off, preds, y, n, seconds, max_mismatches, min_agreement)
    path = Path(out) if out else run_dir / runfolder.PARITY
    fileio.write_json(path, result)
    if sample0 is not None:
        from spikeport.pipeline.parity_stage import save_spike_sample

        save_spike_sample(path.with_name(runfolder.SPIKE_SAMPLE), list(POPULATIONS), 0,
                          -1 if y is None else int(y[0]), sample0, sliced=True)
    if not result["passed"]:
        raise ParityFailure(f"parity failed: {result['failure']}")
    return result


def _result(net, ref, backends, tallies, states_off, preds, y, n, seconds, max_mismatches, min_agreement) -> dict:
    acc = (lambda p: None) if y is None else (lambda p: parity_mod.accuracy(p, y))  # noqa: E731
    comparisons = [{"pair": f"reference-{b}", "backend": b, "backend_accuracy": acc(preds[b]),
                    "prediction_agreement": parity_mod.agreement(preds["reference"], preds[b]),
                    "samples_per_s": round(n / max(seconds[b], 1e-9), 2)} for b in backends]
    for c in comparisons:
        if c["pair"] in tallies:
            c.update(tallies[c["pair"]].result())
    comparisons += [{"pair": k, **t.result(),
                     "prediction_agreement": parity_mod.agreement(*(preds[side] for side in k.split("-")))}
                    for k, t in tallies.items() if not k.startswith("reference-")]
    measured = [c for c in comparisons if "spike_mismatches" in c]
    mismatches = sum(c["spike_mismatches"] for c in measured) if measured else None
    reasons = []
    if max_mismatches is not None and mismatches is not None and mismatches > max_mismatches:
        first = next(c["first_divergence"] for c in measured if c["first_divergence"])
        reasons.append(f"{mismatches} spike-count mismatches (allowed {max_mismatches}), first at {first['layer']}, "
                       f"sample {first['sample']}, step {first['step']}, neuron {first['neuron']}")
    if states_off and any(states_off.values()):
        reasons.append(f"states differ between {backends[0]} and {backends[1]}: {states_off}")
    agreement = min(c["prediction_agreement"] for c in comparisons if "backend" in c)
    need = None if ref.exact else (ref.min_agreement if min_agreement is None else min_agreement)
    if need is not None and agreement < need:
        reasons.append(f"prediction agreement with the float reference {agreement:.2%} (required {need:.2%})")
    return {
        "chip": "xylo-audio2", "backend": ",".join(backends), "samples": int(n), "network": net.describe(),
        "time_steps": net.time_steps, "dataset": ref.dataset, "reference": ref.describe,
        "labels": "given" if y is not None else "no labels: agreement only",
        "float_accuracy": acc(preds["float"]), "reference_accuracy": acc(preds["reference"]),
        "backend_accuracy": comparisons[0]["backend_accuracy"], "prediction_agreement": agreement,
        "spike_mismatches": mismatches, "spike_pairs": [c["pair"] for c in measured],
        "per_layer": measured[0]["per_layer"] if measured else [],
        "first_divergence": next((c["first_divergence"] for c in measured if c["first_divergence"]), None),
        "state_mismatches": states_off, "samples_per_s": {b: round(n / max(seconds[b], 1e-9), 2) for b in backends},
        "comparisons": comparisons, "max_mismatches": max_mismatches, "min_agreement": need,
        "graph_notes": [], **ref.report(), "passed": not reasons, "failure": "; ".join(reasons) or None,
    }
