"""``spikeport energy``: count operations on the deployed network (emulator run over test samples) and
price them on device profiles. All figures are per sample."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.deploy import emulator
from spikeport.files import fileio, runfolder
from spikeport.nirfmt import runnet
from spikeport.nirfmt.load import meta_value
from spikeport.pipeline import limits
from spikeport.pipeline.inputs import graph_inputs

STEPS = ("reading inputs", "running the emulator", "counting operations", "pricing")


def _synapses(conn) -> int:
    """Nonzero weights of a connection (conv and pool kernels unrolled to their full matrix)."""
    return int(conn.to_matrix().nnz) if hasattr(conn, "to_matrix") else int(np.count_nonzero(conn.weight))


def _op_layers(net: LoihiNet, x_int: np.ndarray, spikes: list[np.ndarray]):
    """One OpLayer per population: its synaptic input (delays do not change what a message costs), its
    messages out (a sigma-delta population's nonzero payloads; a zero delta sends nothing). An encoder
    population has no synapses: the input reaches its neurons directly (neuron updates only)."""
    from scipy import sparse

    from spikeport.measure import OpLayer

    layers, prev = [], x_int.reshape(x_int.shape[0], x_int.shape[1], -1)
    graded = net.graded_input
    for idx, (pop, out) in enumerate(zip(net.populations, spikes)):
        if pop.input is None:
            T, B = prev.shape[:2]
            layers.append(OpLayer(name=pop.name, matrix=sparse.csr_matrix((pop.size, 0), dtype=np.int64),
                                  input_events=np.zeros((T, B, 0), np.int64), output_spikes=np.asarray(out) != 0))
            prev, graded = np.asarray(out).astype(np.int64), pop.graded
            continue
        mat = pop.input.to_matrix() if hasattr(pop.input, "to_matrix") else sparse.csr_matrix(pop.input.weight)
        events = prev
        if pop.bias_line is not None:  # an always-on input column: one event every step
            mat = sparse.hstack([mat, pop.bias_line.to_matrix()]).tocsr()
            events = np.concatenate([prev, np.ones(prev.shape[:2] + (1,), prev.dtype)], axis=2)
        rec = None
        if pop.recurrent is not None:
            rec = pop.recurrent.to_matrix() if hasattr(pop.recurrent, "to_matrix") else sparse.csr_matrix(pop.recurrent.weight)
        layers.append(OpLayer(name=pop.name, matrix=mat, input_events=events, output_spikes=np.asarray(out) != 0,
                              graded_input=graded and not pop.input.binary, recurrent=rec,
                              synapses_per_weight=pop.input.synapses_per_weight,
                              recurrent_synapses_per_weight=1 if pop.recurrent is None
                              else pop.recurrent.synapses_per_weight))
        prev, graded = np.asarray(out).astype(np.int64), pop.graded
    return layers


def _resources(net: LoihiNet) -> list[dict]:
    """Per population, what the Loihi maps place: neurons, fan-in (inputs, own neurons when recurrent, the
    bias line), nonzero synapses, synapses per weight (an encoder: neurons only, fed by the host)."""
    out = []
    for p in net.populations:
        conns = p.connections
        out.append({"name": p.name, "n_neurons": p.size,
                    "fan_in": (p.input.shape[1] if p.input is not None else 0) + (p.size if p.recurrent else 0)
                    + (p.bias_line is not None),
                    "n_synapses": sum(_synapses(c) for c in conns), "weight_bits": 8,
                    "synapses_per_weight": max([c.synapses_per_weight for c in conns] or [1]),
                    "kind": p.kind, "delays": any(c.delay is not None for c in conns)})
    return out


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
           max_memory_gb: float | None = None, max_steps: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Count operations on the deployed network (emulator run over ``samples`` test samples) and price
    them on every (or the named) device profile; write energy.json. ``target``: run folder or .nir.

    This is the Python API for a whole run (``count_ops`` / ``estimate_energy`` in
    :mod:`spikeport.measure` are for your own spike arrays). All values are per sample. Returns
    (and writes) a dict with ``synops``, ``effective_macs``, ``dense_macs``, ``neuron_updates``;
    ``energy_j`` ``{profile: J}``, ``breakdown`` ``{profile: {term: J}}``, ``prices`` (each price with
    source, year, quality), ``notes``; ``energy_j_per_layer`` ``{profile: {layer: J}}`` and
    ``energy_j_per_step`` ``{snn profile: [J] * T}``; ``counts`` (count_ops' totals, per_step and
    per-layer counts, each layer with its own per_step), ``loihi_mapping``, ``loihi2_mapping`` (an
    estimate), ``columns`` (the labels of the two estimates), ``validation`` ``{profile: {status, summary,
    reference, rows, per_op: {status, label}, system: {status, label} | None}}``
    (:func:`spikeport.measure.energy.validation`) and, for profiles with labelled overhead terms, the
    system estimate ``energy_j_with_overhead`` beside the per-op ``energy_j``, ``overhead_j``, ``overhead_basis``.
    ``progress(done, total)`` is called after each of the :data:`STEPS`.
    """
    from spikeport.measure import count_ops, estimate_energy, load_profiles, map_to_loihi, map_to_loihi2

    step = progress or (lambda _done, _total: None)
    table = load_profiles(profiles_file)  # a bad profile file is refused before anything runs
    folder = Path(target).is_dir()
    netx_run = folder and runnet.is_netx_run(target)
    nir_path = runnet.graph_file(target) if folder else Path(target)
    net = runnet.load_graph(target)
    budget = limits.Budget.make(max_memory_gb, max_steps)
    check = lambda n: limits.check_whole(net, n, ["emulator"], budget, "energy")  # noqa: E731  (before encoding)
    if netx_run:
        from spikeport.pipeline.reference import NetxReference

        x_int, _ = NetxReference(target, net, inputs=inputs).inputs(net, samples, check)
    else:
        x_int, _, _ = graph_inputs(net, nir_path, data or meta_value(net, "dataset"), data_dir, samples,
                                   inputs=inputs, before_encoding=check)
    check(x_int.shape[1])
    step(1, len(STEPS))
    spikes = emulator.run(net, x_int).spikes
    step(2, len(STEPS))
    counts = count_ops(_op_layers(net, x_int, spikes))
    step(3, len(STEPS))
    est = estimate_energy(counts, table, profiles)
    resources = _resources(net)
    mapping = map_to_loihi(resources)
    if any(p.graded for p in net.populations):
        mapping["note"] = ("graded (sigma-delta) messages exist on Loihi 2 only: this Loihi 1 count is a capacity "
                           "figure, the network does not run on Loihi 1")
    t = counts["totals"]
    notes = list(est["notes"])
    if net.regression and net.populations[-1].lif is not None:  # an output integrator (a membrane readout)
        notes.append(f"readout: the output population '{net.populations[-1].name}' never spikes; it runs on the chip "
                     "(its synaptic operations and neuron updates are counted) and its voltage is read once per "
                     f"sample ({net.n_outputs} values at the last step: host I/O, not priced)")
    result = {"graph": str(nir_path), "network": net.describe(), "samples": counts["samples"],
              "time_steps": counts["time_steps"], "synops": t["synops"], "effective_macs": t["effective_macs"],
              "dense_macs": t["dense_macs"], "neuron_updates": t["neuron_updates"],
              "energy_j": est["energy_j"], "prices": est["prices"], "breakdown": est["breakdown"],
              "notes": notes, "counts": counts, "loihi_mapping": mapping,
              "loihi2_mapping": map_to_loihi2(resources), "validation": est["validation"], "columns": est["columns"],
              **{k: est[k] for k in ("energy_j_with_overhead", "overhead_j", "overhead_basis")},
              "units": "per sample: operations and joules", **_energy_split(counts, table, list(est["energy_j"]))}
    fileio.write_json(Path(out) if out else nir_path.parent / runfolder.ENERGY, result)
    step(len(STEPS), len(STEPS))
    return result
