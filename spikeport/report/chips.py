"""Loihi vs Xylo, side by side, for a network that fits both: the tables of report.md / report.html and of
``spikeport energy`` on a Xylo run.

A pair is two run folders of the same dataset and layer sizes, one deployed on Loihi (parity.json and
energy.json of a Loihi run) and one on Xylo Audio 2 (parity.json with ``chip: xylo-audio2`` and
xylo_energy.json): the run reported and a run of the other chip in the compare folder (default: the run's
parent). Each row carries its source and its limits: the Loihi energy is Loihi 1's per-operation estimate
(Davies et al. 2018, pre-silicon), the Xylo energy a chip-level estimate from one measured network.
"""
from __future__ import annotations

import re
from pathlib import Path

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

Table = tuple[list[str], list[list[str]]]


def fmt_j(joules: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def xylo_energy_rows(res: dict) -> list[tuple[str, str]]:
    """What ``spikeport energy`` prints of a Xylo run's xylo_energy.json ``res``."""
    e = res["energy"]
    rows = [("SynOps / inference", f"{res['synops']:,.0f} (input {res['synops_input']:,.0f}, recurrent "
             f"{res['synops_recurrent']:,.0f}, readout {res['synops_readout']:,.0f})"),
            ("neuron updates / inference", f"{res['neuron_updates']:,}"),
            ("energy / inference", f"{fmt_j(e['energy_j'])} ({e['status']}: {e['dynamic_power_w'] * 1e6:.0f} uW x "
             f"{e['inference_s'] * 1e3:g} ms)"),
            ("derived from", e["derived_from"]), ("power source", e["power_source"]), ("dt", e["dt_source"])]
    if e.get("measured_network_j"):
        rows.append(("measured network", f"{fmt_j(e['measured_network_j'])} per inference: {e['measured_network_source']}"))
    rows += [(r["resource"], f"{r['used']} of {r['limit']}") for r in res["resources"]]
    return rows


def xylo_import_rows(res: dict) -> list[tuple[str, str]]:
    """What ``spikeport import --target xylo-audio2`` prints of its import.json ``res``."""
    rows = [("producer", res["producer"]), ("dt", f"{res['dt']:g} s"), ("network", res["network"]),
            ("approximations", str(len(res["approximations"])) + ("" if res["exact"] else " (see import.json)"))]
    rows += [(f"{a['node']}", f"{a['issue']} -> {a['change']}") for a in res["approximations"]]
    rows += [(f"{r['layer']} decays", f"dash_syn {r['dash_syn']}, dash_mem {r['dash_mem']}") for r in res["layers"]]
    if "agreement" in res:
        rows.append(("float reference vs Xylo predictions", f"{res['agreement']['prediction_agreement']:.2%}"))
    return rows


def _sizes(network: str) -> str:
    """Layer sizes without Xylo's recurrence mark: ``8-64r-8`` and ``8-64-8`` are the same network."""
    return re.sub(r"r(?=-|$)", "", str(network))


def _side(d: Path) -> dict | None:
    """A run folder's chip and the reports the table needs, or None when it has not got them."""
    if not (d / runfolder.PARITY).is_file():
        return None
    p = fileio.read_json(d / runfolder.PARITY)
    if p.get("chip") == "xylo-audio2":
        e = d / runfolder.XYLO_ENERGY
        return {"chip": "xylo", "path": d, "parity": p, "energy": fileio.read_json(e)} if e.is_file() else None
    e = d / runfolder.ENERGY
    return {"chip": "loihi", "path": d, "parity": p, "energy": fileio.read_json(e)} if e.is_file() else None


def find_pair(run_dir: str | Path, compare: str | Path | None = None) -> tuple[dict, dict] | None:
    """(loihi side, xylo side) for ``run_dir`` and the first folder of the other chip in ``compare`` with the same
    dataset and layer sizes, or None."""
    run_dir = Path(run_dir)
    try:
        me = _side(run_dir)
    except SpikeportError:
        return None
    if me is None:
        return None
    parent = Path(compare) if compare else run_dir.resolve().parent
    for d in sorted(x for x in parent.iterdir() if x.is_dir()) if parent.is_dir() else []:
        if d.resolve() == run_dir.resolve():
            continue
        try:
            other = _side(d)
        except SpikeportError:
            continue
        if other and other["chip"] != me["chip"] and other["parity"].get("dataset") == me["parity"].get("dataset") \
                and _sizes(other["parity"].get("network", "?")) == _sizes(me["parity"].get("network", "")):
            return (me, other) if me["chip"] == "loihi" else (other, me)
    return None


def _acc(p: dict) -> str:
    main = next((c for c in p["comparisons"] if "backend" in c), {})
    val = main.get("backend_accuracy")
    return "n/a" if val is None else f"{val:.2%} ({main.get('backend')})"


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def chip_table(loihi: dict, xylo: dict) -> tuple[Table, list[str]]:
    """The side-by-side table and its notes (sources and limits)."""
    lp, le, xp, xe = loihi["parity"], loihi["energy"], xylo["parity"], xylo["energy"]
    layers = le["counts"]["layers"]
    l_neurons = sum(int(r["n_out"]) for r in layers)
    l_syn = sum(int(r["nnz"]) + int(r.get("recurrent_nnz") or 0) for r in layers)
    res = {r["resource"]: r for r in xe["resources"]}
    x_syn = sum(res[k]["used"] for k in ("input synapses", "recurrent synapses", "readout synapses"))
    m1, m2 = le["loihi_mapping"], le.get("loihi2_mapping") or {}
    val = (le.get("validation") or {}).get("loihi", {})
    rows = [
        ["run", loihi["path"].name, xylo["path"].name],
        ["network", f"{lp['network']} (T={lp['time_steps']}, {lp['dataset']})",
         f"{xp['network']} (T={xp['time_steps']}, {xp['dataset']})"],
        ["accuracy on the chip's integers", _acc(lp), _acc(xp)],
        ["float accuracy", _pct(lp.get("float_accuracy")), _pct(xp.get("float_accuracy"))],
        ["spike mismatches (parity)", str(lp.get("spike_mismatches")), str(xp.get("spike_mismatches"))],
        ["SynOps / inference", f"{le['synops']:,.0f}", f"{xe['synops']:,.0f}"],
        ["energy / inference, dynamic (estimate)", f"{fmt_j(le['energy_j']['loihi'])} (Loihi 1 per-op)",
         f"{fmt_j(xe['energy']['energy_j'])} (chip-level dynamic power x T x dt)"],
        ["with idle and host power", fmt_j(le["energy_j_with_overhead"]["loihi"]) + " (board-level terms)"
         if (le.get("energy_j_with_overhead") or {}).get("loihi") else "n/a",
         "not included (no public idle figure used)"],
        ["energy status", _loihi_status(val), xe["energy"]["status"]],
        ["cores", f"Loihi 1: {m1['total_cores']} of 128 per chip; Loihi 2: {m2.get('total_cores', 'n/a')} (estimate)",
         "1 (the whole Xylo core)"],
        ["neurons", f"{l_neurons}", f"{res['hidden neurons']['used']} hidden of {res['hidden neurons']['limit']}, "
         f"{res['output neurons']['used']} output of {res['output neurons']['limit']}"],
        ["synapses", f"{l_syn:,}", f"{x_syn:,} (largest recurrent fan-out {res['largest recurrent fan-out']['used']} "
         f"of {res['largest recurrent fan-out']['limit']})"],
    ]
    notes = [f"Loihi energy: {le['prices']['loihi']['synop']['source']} ({le['prices']['loihi']['synop']['quality']}); "
             f"validation: {val.get('summary', 'none')}",
             f"Xylo energy: {xe['energy']['derived_from']}; power: {xe['energy']['power_source']}; "
             f"dt: {xe['energy']['dt_source']}",
             "Accuracy: each chip's integers from its own training (same data and layer sizes, quantized for that "
             "chip); Loihi: reset to zero, one spike per step; Xylo: subtractive reset, up to 31 spikes per hidden "
             "neuron and step, bit-shift leaks.",
             "SynOps: Loihi counts a spike's fan-out once; Xylo counts every delivered event (a hidden neuron's "
             "n spikes in a step reach each target n times)."]
    return (["", "Loihi", "Xylo Audio 2"], rows), notes


def _loihi_status(val: dict) -> str:
    """Each Loihi estimate's status as its own evidence rows give it (measure.energy.validation)."""
    per_op = (val.get("per_op") or {}).get("status", "not validated")
    system = (val.get("system") or {}).get("status")
    return f"per-op: {per_op}" + (f"; system: {system}" if system else "")
