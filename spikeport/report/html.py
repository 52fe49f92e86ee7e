"""report.html: one self-contained page per run folder (inline CSS, figures as base64 PNG, no
script, no external asset), built from parity.json, energy.json, parity_spikes.npz and the
parity/energy reports of the sibling run folders. Every text from a file is HTML-escaped.

Sections, each an ``<section id=...>``: parity, raster, operations, activity, energy, validation,
mapping (Loihi 1 and 2), runs, sources (:data:`SECTIONS`). A section whose input is missing says which command makes it.
"""
from __future__ import annotations

import base64
import html
import re
import zipfile
from pathlib import Path

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.report import markdown as md
from spikeport.report import plots

SECTIONS = {"parity": "Parity: quantized PyTorch reference vs deployed backends",
            "raster": "Spike raster of one sample",
            "operations": "Operations per layer and time step",
            "activity": "Firing rate and sparsity per layer",
            "energy": "Energy per sample",
            "validation": "Validation of the energy profiles against silicon",
            "mapping": "Loihi 1 and Loihi 2 mapping",
            "runs": "Accuracy vs energy across runs",
            "sources": "Sources of the prices"}
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;
background:#f4f6f9;margin:0}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh;box-sizing:border-box}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;padding-top:10px;border-top:1px solid #e3e7ee}
.sub{color:#566074;margin:0 0 14px}nav{font-size:13px;margin:8px 0 4px}nav a{margin-right:14px;color:#1f6fb4}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:700;font-size:14px;margin-left:8px;
vertical-align:middle}.pass{background:#dff3e4;color:#17692f}.fail{background:#fbe0e0;color:#a11d1d}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px;max-width:100%}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfd}.wide{display:block;overflow-x:auto}
.sources td{max-width:420px}img{max-width:100%;height:auto;display:block;margin:6px 0 4px}
.caption{font-size:13px;color:#566074;margin:2px 0 12px}
.note{background:#fff8e6;border-left:4px solid #f2a541;padding:8px 12px;margin:10px 0;font-size:14px}
.missing{color:#8a4b00;font-style:italic}ul.notes{font-size:13px;color:#3a4254}code{font-size:12px}
"""
_NUMERIC = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?( ?(%|[munpf]?J|B|\(.*\)))?$")


def render(run_dir: str | Path, compare: str | Path | None = None) -> str:
    """The page for ``run_dir``; ``compare``: folder whose runs are compared (default: the parent)."""
    run_dir = Path(run_dir)
    rep = md.load_reports(run_dir)
    p, e = rep.get("parity"), rep.get("energy")
    parent = Path(compare) if compare else run_dir.resolve().parent
    runs, skipped = md.collect_runs(parent, include=run_dir)
    bodies = {"parity": _parity(p, run_dir), "raster": _raster(run_dir, p), "operations": _operations(e, run_dir),
              "activity": _activity(e, run_dir), "energy": _energy(e, run_dir), "validation": _validation(e, run_dir), "mapping": _mapping(e, run_dir),
              "runs": _runs(runs, skipped, parent, run_dir), "sources": _sources(e, run_dir)}
    nav = "".join(f'<a href="#{key}">{_esc(title)}</a>' for key, title in SECTIONS.items())
    sections = "".join(f'<section id="{key}"><h2>{_esc(SECTIONS[key])}</h2>{bodies[key]}</section>\n'
                       for key in SECTIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>spikeport report: {_esc(run_dir.name)}</title><style>{CSS}</style></head>\n"
            f"<body><main>{_header(run_dir, p, e)}<nav>{nav}</nav>\n{sections}</main></body></html>\n")


def write(run_dir: str | Path, compare: str | Path | None = None) -> Path:
    path = Path(run_dir) / runfolder.REPORT_HTML
    fileio.write_text(path, render(run_dir, compare))
    return path


def load_spike_sample(path: str | Path) -> dict:
    """Read a ``parity_spikes.npz`` (see :func:`spikeport.pipeline.parity_stage.save_spike_sample`).

    Returns ``{"layers": [str], "sides": [str], "sample": int, "label": int, "spikes": {side:
    [[T, N_i] bool per layer]}}``; any problem is a SpikeportError naming the file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            layers, sides = [str(s) for s in z["layers"]], [str(s) for s in z["sides"]]
            spikes = {side: [np.asarray(z[f"{side}_{i}"], bool) for i in range(len(layers))] for side in sides}
            sample, label = int(z["sample"]), int(z["label"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        raise SpikeportError(f"{path}: not a readable spike sample ({type(err).__name__}: {err})") from None
    if "reference" not in spikes or len(sides) < 2:
        raise SpikeportError(f"{path}: needs the reference and at least one backend, has {sides}")
    for side in sides:
        for i, s in enumerate(spikes[side]):
            if s.ndim != 2 or s.shape != spikes["reference"][i].shape:
                raise SpikeportError(f"{path}: {side}_{i} has shape {s.shape}, expected "
                                     f"{spikes['reference'][i].shape} [T, N]")
    return {"layers": layers, "sides": sides, "sample": sample, "label": label, "spikes": spikes}


# ---- pieces ------------------------------------------------------------------------------------

def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _table(table: md.Table, cls: str = "") -> str:
    headers, rows = table
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{_esc(c)}</td>' if _NUMERIC.match(str(c)) else f"<td>{_esc(c)}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f'<table class="{_esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f'<p class="caption">{_esc(caption)}</p>' if caption else ""
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">{cap}'


def _missing(what: str, command: str) -> str:
    return f'<p class="missing">{_esc(what)} not found: run <code>{_esc(command)}</code> first.</p>'


def _header(run_dir: Path, p: dict | None, e: dict | None) -> str:
    badge = ""
    if p:
        ok = bool(p.get("passed"))
        badge = f'<span class="badge {"pass" if ok else "fail"}">parity {"PASS" if ok else "FAIL"}</span>'
    src = p or e or {}
    parts = [f"network {src['network']}" if "network" in src else "",
             f"T = {src['time_steps']} steps" if "time_steps" in src else "",
             f"dataset {p['dataset']}" if p else "",
             f"parity on {p['samples']} test samples" if p else "",
             f"operations counted on {e['samples']} samples" if e else ""]
    return (f"<h1>spikeport report: {_esc(run_dir.name)}{badge}</h1>"
            f'<p class="sub">{_esc(" · ".join(x for x in parts if x))}</p>')


def _parity(p: dict | None, run_dir: Path) -> str:
    if not p:
        return _missing(runfolder.PARITY, f"spikeport parity {run_dir}")
    pairs = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in md.summary_rows({"parity": p}))
    out = [f'<table class="kv"><tbody>{pairs}</tbody></table>',
           "<p>Spike counts and mismatches per layer, summed over all samples and time steps. "
           "<em>a</em> is the left side of the comparison, <em>b</em> the right.</p>",
           _table(md.parity_rows(p))]
    if p.get("first_divergence"):
        d = p["first_divergence"]
        out.append(f'<p class="note">First divergence ({_esc(d.get("pair", ""))}): layer {_esc(d["layer"])}, '
                   f'sample {_esc(d["sample"])}, step {_esc(d["step"])}, neuron {_esc(d["neuron"])}; '
                   f'emulator state {_esc(d.get("emulator_state", "-"))}.</p>')
    return "".join(out)


def _raster(run_dir: Path, p: dict | None) -> str:
    path = run_dir / runfolder.SPIKE_SAMPLE
    if not path.is_file():
        return _missing(runfolder.SPIKE_SAMPLE, f"spikeport parity {run_dir}")
    try:
        s = load_spike_sample(path)
    except SpikeportError as err:
        return f'<p class="missing">{_esc(err)}</p>'
    other = "lava" if "lava" in s["sides"] else next(x for x in s["sides"] if x != "reference")
    label = {"lava": "Lava (Loihi fixed_pt)", "emulator": "spikeport emulator"}.get(other, other)
    divergent = bool(p and p.get("first_divergence") and p["first_divergence"]["sample"] == s["sample"])
    title = (f"test sample {s['sample']} (label {s['label']}), "
             + ("the sample of the first divergence" if divergent else "the first test sample"))
    png = plots.raster(s["layers"], s["spikes"]["reference"], s["spikes"][other], label, title)
    rows = [[side, name, str(int(a.sum())), str(int((a != s["spikes"]["reference"][i]).sum()))]
            for side in s["sides"] if side != "reference"
            for i, (name, a) in enumerate(zip(s["layers"], s["spikes"][side]))]
    return (_img(png, f"spike raster of {title}: PyTorch reference vs {label}",
                 "Each row of a panel is a neuron, each column a time step. Left: the checkpoint's "
                 "integer (quantized) PyTorch forward; right: the deployed graph. Identical panels mean "
                 "bit-exact spikes for this sample.")
            + _table((["backend", "layer", "spikes", "mismatches vs reference (this sample)"], rows)))


def _operations(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing(runfolder.ENERGY, f"spikeport energy {run_dir}")
    c = e["counts"]
    per_step = e.get("energy_j_per_step", {}).get("loihi")
    return (f"<p>Counted on the deployed (quantized, masked) integer weights over {c['samples']} test samples "
            f"and {c['time_steps']} time steps, NeuroBench's definitions: one SynOp is one binary input "
            "spike times the nonzero fan-out of its neuron; a graded (analog) first-layer input event is "
            "an effective MAC; dense ANN MACs are the same layers run once per sample as an ANN "
            "(n_in × n_out). Neuron updates are active when the neuron received an event or spiked. "
            "All values are per sample.</p>"
            + _img(plots.operations(c["layers"], per_step), "operations per layer and per time step")
            + f'<div class="wide">{_table(md.layer_rows(e))}</div>')


def _activity(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing(runfolder.ENERGY, f"spikeport energy {run_dir}")
    return _img(plots.activity(e["counts"]["layers"]), "firing rate per layer",
                "Firing rate: spikes / (neurons × time steps), averaged over samples. Input activation "
                "sparsity: fraction of zero entries of the events entering the layer.")


def _energy(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing(runfolder.ENERGY, f"spikeport energy {run_dir}")
    names = md.ordered_profiles(e)
    kinds = {n: md.profile_kind(e, n) for n in names}
    out = [_img(plots.energy_by_profile([(n, kinds[n], e["energy_j"][n]) for n in names]), "energy per profile"),
           f'<div class="note"><p>{_esc(md.LOIHI2_STATEMENT)}</p><p>{_esc(md.ANN_STATEMENT)}</p></div>',
           _table(md.energy_rows(e))]
    per_layer = e.get("energy_j_per_layer")
    if per_layer:
        shown = {n: per_layer[n] for n in ("loihi", *md.ANN_BASELINES) if n in per_layer}
        layers = [c["name"] for c in e["counts"]["layers"]]
        out += ["<h3>Energy per layer</h3>",
                _img(plots.energy_per_layer(shown, layers, kinds), "energy per layer") if shown else "",
                f'<div class="wide">{_table(md.layer_energy_rows(e))}</div>']
    else:
        out.append(_missing("per-layer energy in energy.json", f"spikeport energy {run_dir}"))
    return "".join(out)


def _validation(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing("energy.json", f"spikeport energy {run_dir}")
    return (f'<div class="note"><p>{_esc(md.VALIDATION_STATEMENT)}</p></div>'
            "<p>Every profile priced above, each of its estimates with the status its own comparisons with "
            "published whole-network measurements give. Where a profile carries labelled overhead terms (idle "
            "and host power at a stated time-step rate) the system estimate is shown beside the per-op figure, "
            "with its own status.</p>"
            + f'<div class="wide">{_table(md.validation_rows(e))}</div>')


def _mapping(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing(runfolder.ENERGY, f"spikeport energy {run_dir}")
    m = e["loihi_mapping"]
    notes = "".join(f"<li>{_esc(a)}</li>" for a in m.get("assumptions", []))
    out = (f"<h3>Loihi 1</h3><p>{m['total_cores']} Loihi 1 cores on {m['chips']} chip(s). The binding constraint "
           "is the core resource (neurons, synaptic memory, input or output axons) that sets each layer's count.</p>"
           + _table(md.mapping_rows(e)) + f'<ul class="notes">{notes}</ul>')
    m2 = e.get("loihi2_mapping")
    if not m2:
        return out + _missing("Loihi 2 map in energy.json", f"spikeport energy {run_dir}")
    notes2 = "".join(f"<li>{_esc(a)}</li>" for a in m2.get("assumptions", []))
    return (out + f"<h3>Loihi 2 (estimate)</h3><p>{m2['total_cores']} Loihi 2 neuron cores on {m2['chips']} "
            "chip(s), an ESTIMATE. The binding limit (neurons, synapses or fan-in) is the one that sets each "
            f'layer\'s count.</p><div class="note"><p>{_esc(md.LOIHI2_MAP_STATEMENT)}</p></div>'
            + _table(md.loihi2_mapping_rows(e)) + f'<ul class="notes">{notes2}</ul>')


def _runs(runs: list[dict], skipped: list[str], parent: Path, run_dir: Path) -> str:
    if not runs:
        return _missing(f"run folders with parity.json and energy.json in {parent}",
                        f"spikeport parity {run_dir} && spikeport energy {run_dir}")
    notes = "".join(f"<li>skipped {_esc(s)}</li>" for s in skipped)
    return (f"<p>Every run folder in <code>{_esc(parent)}</code> with both reports ({len(runs)} runs; "
            "this run outlined in black).</p>"
            + _img(plots.accuracy_vs_energy(runs, run_dir.name), "accuracy vs energy across runs",
                   "Blue: the SNN priced on Loihi 1. Squares (fp32) and triangles (int8): the same layers "
                   "as a dense ANN at 45 nm, hollow compute-only, filled with one weight read per MAC. "
                   "No ANN was trained: its points sit at the run's accuracy and compare energy only.")
            + f'<div class="wide">{_table(md.runs_rows(runs))}</div>'
            + (f'<ul class="notes">{notes}</ul>' if notes else ""))


def _sources(e: dict | None, run_dir: Path) -> str:
    if not e:
        return _missing(runfolder.ENERGY, f"spikeport energy {run_dir}")
    notes = "".join(f"<li>{_esc(n)}</li>" for n in e.get("notes", []))
    return (f'<div class="note"><p>{_esc(md.LOIHI2_STATEMENT)}</p><p>{_esc(md.ANN_STATEMENT)}</p></div>'
            "<p>Quality says how solid a price is: silicon measurement, pre-silicon estimate, vendor "
            "documentation, or secondary table (a figure copied from another publication).</p>"
            + _table(md.source_rows(e), "sources") + f'<ul class="notes">{notes}</ul>')
