"""The stages behind the CLI, as a Python API: deploy, parity, energy, demo.

A *run folder* holds ``model.safetensors`` + ``config.json`` (from ``train``), ``model.nir``
(from ``export``) and the JSON reports. The reference side of parity is the checkpoint's Loihi-integer
torch forward; the backend side runs ``model.nir`` alone (emulator and/or Lava).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from spikeport import fileio, limits, streaming
from spikeport.data import encode, load_dataset
from spikeport.deploy import emulator
from spikeport.deploy.netdef import LoihiNet
from spikeport.deploy.nir_load import load_nir, meta_value
from spikeport.errors import ParityFailure, SpikeportError
from spikeport.measure import parity as parity_mod
from spikeport.measure.readout import predict

BACKENDS = ("emulator", "lava")
SPIKE_SAMPLE = "parity_spikes.npz"  # one sample's spikes per layer and side, beside parity.json
INPUT_SEED = 12345  # encoder seed for evaluation inputs (matters for rate coding only)
Progress = Callable[[str, int, int], None]


@dataclass
class BackendRun:
    spikes: list[np.ndarray]
    seconds: float

    @property
    def samples_per_s(self) -> float:
        n = self.spikes[-1].shape[1]
        return n / self.seconds if self.seconds > 0 else float("inf")


def parse_backends(spec: str) -> list[str]:
    names = [b.strip() for b in spec.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        raise SpikeportError(f"--backend must be one or more of {', '.join(BACKENDS)} (comma-separated), got {spec!r}")
    return list(dict.fromkeys(names))


def check_samples(samples: int | None) -> None:
    if samples is not None and samples < 1:
        raise SpikeportError(f"--samples must be at least 1, got {samples}")


def test_inputs(net: LoihiNet, data: str, data_dir: str | None, samples: int | None,
                seed: int = 0, before_encoding: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First ``samples`` test samples encoded as the graph says: (x_int [T,B,...], labels [B], x [B,...]).
    ``before_encoding(B)`` runs once the sample count is known, before the inputs are allocated (the
    memory budget check)."""
    check_samples(samples)
    ds = load_dataset(data, data_dir, seed=seed, n_bins=net.time_steps)
    x, y = ds.x_test[:samples] if samples else ds.x_test, ds.y_test[:samples] if samples else ds.y_test
    if before_encoding is not None:
        before_encoding(len(y))
    shape = tuple(int(s) for s in np.asarray(meta_value(net, "input_shape", ds.input_shape)).ravel())
    if int(np.prod(ds.input_shape)) != net.input_size:
        raise SpikeportError(f"dataset {data} has inputs of shape {ds.input_shape}, the graph expects {shape}")
    enc = encode(np.asarray(x), net.time_steps, str(meta_value(net, "encoder", "direct")), seed=INPUT_SEED)
    return enc, np.asarray(y), np.asarray(x)


def graph_inputs(net: LoihiNet, nir_path: str | Path, data: str | None, data_dir: str | None, samples: int | None,
                 seed: int = 0, inputs: str | Path | None = None, labels: str | Path | None = None,
                 before_encoding: Callable[[int], None] | None = None):
    """(x_int [T, B, ...], labels or None, x): ``--inputs`` / ``--labels`` .npy files ([N, T, ...]) or an
    imported run's stored inputs when given or the graph is imported, else the dataset's test split."""
    if inputs is not None or meta_value(net, "encoder") == "imported":
        from spikeport.importer.runio import run_inputs

        check_samples(samples)
        return run_inputs(net, nir_path, inputs, labels, samples)
    if not data:
        raise SpikeportError(f"{nir_path}: the graph names no dataset; pass --data or --inputs")
    return test_inputs(net, str(data), data_dir, samples, seed, before_encoding)


def run_backend(net: LoihiNet, x_int: np.ndarray, backend: str, *, record: str = "all",
                timeout_s: float | None = None, shards: int = 1) -> BackendRun:
    """Spikes of every population on ``backend`` for x_int [T, B, ...]; ``shards`` > 1 splits the
    samples over that many worker processes and merges the spikes exactly."""
    t0 = time.perf_counter()
    if shards < 1:
        raise SpikeportError(f"--shards must be at least 1, got {shards}")
    if shards > 1 and backend in BACKENDS:
        from spikeport.deploy.shards import run_sharded

        spikes = run_sharded(net, x_int, backend, shards, record=record, timeout_s=timeout_s or 1800.0)
    elif backend == "emulator":
        spikes = emulator.run(net, x_int).spikes
        if record == "output":
            spikes = spikes[-1:]
    elif backend == "lava":
        from spikeport.deploy.supervise import DEFAULT_TIMEOUT_S, run_lava

        spikes = run_lava(net, x_int, record=record, timeout_s=timeout_s or DEFAULT_TIMEOUT_S)
    else:
        raise SpikeportError(f"unknown backend {backend!r}")
    return BackendRun(spikes=[np.asarray(s, bool) for s in spikes], seconds=time.perf_counter() - t0)


def deploy(nir_path: str | Path, *, data: str, data_dir: str | None = None, backend: str = "lava",
           samples: int | None = None, out: str | Path | None = None, seed: int = 0,
           inputs: str | Path | None = None, labels: str | Path | None = None, timeout_s: float | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None) -> dict:
    """Run ``model.nir`` alone on a backend over the test split (or ``inputs``); write deploy.json
    (+ predictions.npz). Without labels ``accuracy`` is None. Samples run in chunks sized to the
    memory budget (:mod:`spikeport.limits`); a network over budget is refused before it runs."""
    net = load_nir(nir_path)
    b, budget = parse_backends(backend)[0], limits.Budget.make(max_memory_gb, max_steps)
    check = lambda n: limits.plan_chunk(net, n, [b], budget, "deploy")  # noqa: E731  (before encoding)
    x_int, y, _ = graph_inputs(net, nir_path, data, data_dir, samples, seed, inputs, labels, check)
    chunk = check(x_int.shape[1])
    run = BackendRun(*streaming.run_chunks(
        lambda xs: run_backend(net, xs, b, record="output", timeout_s=timeout_s), x_int, chunk))
    pred = predict(run.spikes[-1], net.meta)
    result = {"backend": backend, "graph": str(nir_path), "network": net.describe(), "samples": int(len(pred)),
              "accuracy": None if y is None else parity_mod.accuracy(pred, y),
              "samples_per_s": round(run.samples_per_s, 2), "seconds": round(run.seconds, 3)}
    if out:
        out = Path(out)
        fileio.write_json(out / "deploy.json", result)
        arrays = {"predictions": pred, "output_counts": run.spikes[-1].sum(0),
                  **({} if y is None else {"labels": y})}
        fileio.write_npz(out / "predictions.npz", arrays)
    return result


def _reference(run_dir: Path, x_int: np.ndarray, x: np.ndarray, net: LoihiNet):
    """Quantized torch forward (integer spikes per layer) and float-model predictions."""
    import torch

    from spikeport.data import float_view
    from spikeport.train import checkpoint

    model, cfg, raw = checkpoint.load(run_dir)
    with torch.no_grad():
        ref = [s.numpy() for s in model.forward_int(torch.from_numpy(x_int.astype(np.int64)))]
        xf = torch.from_numpy(float_view(x_int, cfg.encoder))
        float_out = model(xf, qat=False)[-1].numpy() > 0
    if [s.shape[2] for s in ref] != [p.size for p in net.populations]:
        raise SpikeportError(f"{run_dir / 'model.nir'} does not match the checkpoint's layers; run `spikeport export` again")
    return ref, float_out, cfg


def parity(run_dir: str | Path, *, backend: str = "lava", samples: int | None = None,
           max_mismatches: int | None = 0, out: str | Path | None = None, timeout_s: float | None = None,
           shards: int = 1, inputs: str | Path | None = None, labels: str | Path | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None) -> dict:
    """Compare the quantized torch reference with each backend on the test split; write parity.json.

    Samples run in chunks sized to the memory budget (``max_memory_gb``, ``max_steps``: see
    :mod:`spikeport.limits`), so memory stays flat however many samples run (:mod:`spikeport.streaming`).
    Raises :class:`ParityFailure` (after writing the report) when mismatches exceed ``max_mismatches``.
    """
    run_dir = Path(run_dir)
    fileio.refuse_pickle(run_dir)
    if (run_dir / "import.json").is_file():  # imported from a peer: the float reference is the source graph
        from spikeport.importer.parity import parity_imported

        return parity_imported(run_dir, backend=backend, samples=samples, max_mismatches=max_mismatches,
                               out=out, timeout_s=timeout_s, inputs=inputs, labels=labels)
    backends = parse_backends(backend)
    check_samples(samples)
    nir_path = run_dir / "model.nir"
    if not nir_path.exists():
        raise SpikeportError(f"{nir_path}: file not found (run `spikeport export {run_dir}` first)")
    net = load_nir(nir_path)
    from spikeport.train import checkpoint

    _, cfg, _ = checkpoint.load(run_dir)
    budget, plan = limits.Budget.make(max_memory_gb, max_steps), {}

    def _plan(n: int) -> None:  # before the inputs are encoded: refuse early, with the estimate
        plan["chunk"] = limits.plan_chunk(net, n, ["reference", *backends], budget, "parity")

    x_int, y, x = test_inputs(net, cfg.data, cfg.data_dir, samples, cfg.seed, before_encoding=_plan)
    chunk = plan["chunk"]
    names = [p.name for p in net.populations]
    cp = streaming.parity_chunks(net, x_int, lambda xs: _reference(run_dir, xs, None, net)[:2], backends,
                                 lambda xs, b: run_backend(net, xs, b, timeout_s=timeout_s, shards=shards), chunk)
    ref_pred = cp.ref_pred
    result = {
        "backend": ",".join(backends), "samples": int(len(y)), "network": net.describe(),
        "time_steps": net.time_steps, "dataset": cfg.data,
        "float_accuracy": parity_mod.accuracy(cp.float_pred, y),
        "reference_accuracy": parity_mod.accuracy(ref_pred, y), "chunk_samples": chunk,
    }
    comparisons = []
    for b in backends:
        pred = cp.preds[b]
        comparisons.append({"pair": f"reference-{b}", "backend": b, "backend_accuracy": parity_mod.accuracy(pred, y),
                            "prediction_agreement": parity_mod.agreement(ref_pred, pred),
                            "samples_per_s": round(len(y) / max(cp.seconds[b], 1e-9), 2),
                            **cp.tallies[f"reference-{b}"].result()})
    if len(backends) > 1:
        ba, bb = backends[:2]
        comparisons.append({"pair": f"{ba}-{bb}",
                            "prediction_agreement": parity_mod.agreement(cp.preds[ba], cp.preds[bb]),
                            **cp.tallies[f"{ba}-{bb}"].result()})
    main = comparisons[0]
    result.update({
        "backend_accuracy": main["backend_accuracy"], "prediction_agreement": main["prediction_agreement"],
        "spike_mismatches": int(sum(c["spike_mismatches"] for c in comparisons)),
        "per_layer": main["per_layer"], "first_divergence": next(
            ({"pair": c["pair"], **c["first_divergence"]} for c in comparisons if c["first_divergence"]), None),
        "samples_per_s": {c["backend"]: c["samples_per_s"] for c in comparisons if "backend" in c},
        "comparisons": comparisons, "max_mismatches": max_mismatches, "shards": shards,
    })
    if result["first_divergence"]:
        result["first_divergence"]["emulator_state"] = _emulator_state(net, x_int, result["first_divergence"])
    result["passed"] = max_mismatches is None or result["spike_mismatches"] <= max_mismatches
    report_path = Path(out) if out else run_dir / "parity.json"
    fileio.write_json(report_path, result)
    sample, sides = cp.sample_sides(result["first_divergence"])
    save_spike_sample(report_path.with_name(SPIKE_SAMPLE), names, sample, int(y[sample]), sides, sliced=True)
    if not result["passed"]:
        d = result["first_divergence"]
        raise ParityFailure(f"parity failed: {result['spike_mismatches']} spike mismatches (allowed {max_mismatches}); "
                            f"first divergence {d['pair']} at layer {d['layer']}, sample {d['sample']}, "
                            f"step {d['step']}, neuron {d['neuron']}")
    return result


def save_spike_sample(path: Path, names: list[str], sample: int, label: int,
                      sides: dict[str, list[np.ndarray]], sliced: bool = False) -> None:
    """Write one sample's spikes of every layer, for each side of a parity run, to ``path`` (atomic).

    ``sides``: ``{"reference" | backend: [T, B, N_i] spikes per layer}`` (``sliced``: already the
    sample's own ``[T, N_i]``). The .npz holds no pickled
    objects (load it with ``allow_pickle=False``): ``layers`` [L] str, ``sides`` [S] str, ``sample``
    (index in the parity batch) and ``label`` int scalars, and ``{side}_{i}`` [T, N_i] bool for each
    side and layer index ``i``.
    """
    arrays = {"layers": np.array(names, dtype=str), "sides": np.array(list(sides), dtype=str),
              "sample": np.int64(sample), "label": np.int64(label)}
    for side, spikes in sides.items():
        for i, s in enumerate(spikes):
            arrays[f"{side}_{i}"] = (np.asarray(s) if sliced else np.asarray(s)[:, sample]) != 0
    fileio.write_npz(path, arrays, compressed=True)


def _emulator_state(net: LoihiNet, x_int: np.ndarray, d: dict) -> dict:
    """The emulator's integer u, v of the diverging neuron at the diverging step (Lava's state is not
    recorded during streaming; the emulator equals Lava wherever spikes agree)."""
    one = x_int[:, d["sample"]: d["sample"] + 1]
    run = emulator.run(net, one, record_states=True)
    u, v = run.states[d["layer_index"]]
    step, n = d["step"], d["neuron"]
    return {"u": int(u[step, 0, n]), "v": int(v[step, 0, n]),
            "u_prev": int(u[step - 1, 0, n]) if step else 0, "v_prev": int(v[step - 1, 0, n]) if step else 0}


def _synapses(conn) -> int:
    """Nonzero synapses of a connection (conv and pool kernels unrolled to their full matrix)."""
    return int(conn.to_matrix().nnz) if hasattr(conn, "to_matrix") else int(np.count_nonzero(conn.weight))


def _op_layers(net: LoihiNet, x_int: np.ndarray, spikes: list[np.ndarray]):
    from scipy import sparse

    from spikeport.measure import OpLayer

    layers, prev = [], x_int.reshape(x_int.shape[0], x_int.shape[1], -1)
    for idx, (pop, out) in enumerate(zip(net.populations, spikes)):
        mat = pop.input.to_matrix() if hasattr(pop.input, "to_matrix") else sparse.csr_matrix(pop.input.weight)
        rec = None
        if pop.recurrent is not None:
            rec = pop.recurrent.to_matrix() if hasattr(pop.recurrent, "to_matrix") else sparse.csr_matrix(pop.recurrent.weight)
        layers.append(OpLayer(name=pop.name, matrix=mat, input_events=prev, output_spikes=out,
                              graded_input=(idx == 0 and net.graded_input), recurrent=rec))
        prev = out.astype(np.int64)
    return layers


def _energy_split(counts: dict, table: dict, names: list[str]) -> dict:
    """Joules per sample by layer (every profile) and by time step (SNN profiles), each priced with
    :func:`estimate_energy` on that layer's or step's counts; they sum to the profile's total."""
    from spikeport.measure import estimate_energy

    per_layer = {n: {} for n in names}
    for layer in counts["layers"]:
        for n, joules in estimate_energy({"totals": layer, "layers": [layer]}, table, names)["energy_j"].items():
            per_layer[n][layer["name"]] = joules
    snn = [n for n in names if table[n].kind == "snn"]
    per_step, ps = {n: [] for n in snn}, counts["per_step"]
    neurons = float(sum(c["n_out"] for c in counts["layers"]))
    for t in range(counts["time_steps"] if snn else 0):
        active = ps["neuron_updates_active"][t]
        step = {"synops": ps["synops"][t], "effective_macs": ps["effective_macs"][t],
                "neuron_updates_active": active, "neuron_updates_inactive": neurons - active,
                "neuron_updates": neurons, "spikes_out": ps["spikes_out"][t]}
        for n, joules in estimate_energy({"totals": step, "layers": []}, table, snn)["energy_j"].items():
            per_step[n].append(joules)
    return {"energy_j_per_layer": per_layer, "energy_j_per_step": per_step}


def energy(target: str | Path, *, profiles: list[str] | None = None, profiles_file: str | Path | None = None,
           samples: int | None = 1000, data: str | None = None, data_dir: str | None = None,
           out: str | Path | None = None, inputs: str | Path | None = None,
           max_memory_gb: float | None = None, max_steps: int | None = None) -> dict:
    """Count operations on the deployed network (emulator run over ``samples`` test samples) and price
    them on every (or the named) device profile; write energy.json. ``target``: run folder or .nir.

    This is the Python API for a whole run (``count_ops`` / ``estimate_energy`` in
    :mod:`spikeport.measure` are for your own spike arrays). All values are per sample. Returns
    (and writes) a dict with ``synops``, ``effective_macs``, ``dense_macs``, ``neuron_updates``;
    ``energy_j`` ``{profile: J}``, ``breakdown`` ``{profile: {term: J}}``, ``prices`` (each price with
    source, year, quality), ``notes``; ``energy_j_per_layer`` ``{profile: {layer: J}}`` and
    ``energy_j_per_step`` ``{snn profile: [J] * T}``; ``counts`` (count_ops' totals, per_step and
    per-layer counts, each layer with its own per_step), ``loihi_mapping``, ``loihi2_mapping`` (an
    estimate), ``validation`` ``{profile: {status, summary, reference, ratio}}`` and, for profiles
    with labelled overhead terms, ``energy_j_with_overhead``, ``overhead_j``, ``overhead_basis``.
    """
    from spikeport.measure import count_ops, estimate_energy, load_profiles, map_to_loihi, map_to_loihi2

    target = Path(target)
    nir_path = target / "model.nir" if target.is_dir() else target
    net = load_nir(nir_path)
    budget = limits.Budget.make(max_memory_gb, max_steps)
    check = lambda n: limits.check_whole(net, n, ["emulator"], budget, "energy")  # noqa: E731  (before encoding)
    x_int, _, _ = graph_inputs(net, nir_path, data or meta_value(net, "dataset"), data_dir, samples, inputs=inputs,
                               before_encoding=check)
    check(x_int.shape[1])
    spikes = emulator.run(net, x_int).spikes
    counts = count_ops(_op_layers(net, x_int, spikes))
    table = load_profiles(profiles_file)
    est = estimate_energy(counts, table, profiles)
    resources = [{"name": p.name, "n_neurons": p.size, "fan_in": p.input.shape[1],
                  "n_synapses": _synapses(p.input) + (_synapses(p.recurrent) if p.recurrent else 0),
                  "weight_bits": 8} for p in net.populations]
    mapping = map_to_loihi(resources)
    t = counts["totals"]
    result = {"graph": str(nir_path), "network": net.describe(), "samples": counts["samples"],
              "time_steps": counts["time_steps"], "synops": t["synops"], "effective_macs": t["effective_macs"],
              "dense_macs": t["dense_macs"], "neuron_updates": t["neuron_updates"],
              "energy_j": est["energy_j"], "prices": est["prices"], "breakdown": est["breakdown"],
              "notes": est["notes"], "counts": counts, "loihi_mapping": mapping,
              "loihi2_mapping": map_to_loihi2(resources), "validation": est["validation"],
              **{k: est[k] for k in ("energy_j_with_overhead", "overhead_j", "overhead_basis")},
              "units": "per sample: operations and joules", **_energy_split(counts, table, list(est["energy_j"]))}
    fileio.write_json(Path(out) if out else nir_path.parent / "energy.json", result)
    return result
