"""report.md from a run folder's JSON files (metrics, parity, energy), and the tables it shares with
report.html: each ``*_rows`` function returns ``(headers, rows)`` of display strings.

Every count and energy in these tables is PER SAMPLE, as in energy.json.
"""
from __future__ import annotations

import html
from pathlib import Path

from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder

ENERGY_ORDER = ("loihi", "loihi-kerasspiking", "truenorth", "spinnaker2", "spinnaker",
                "ann-int8-45nm", "ann-int8-45nm-mem", "ann-fp32-45nm", "ann-fp32-45nm-mem", "gpu", "cpu", "arm")
# The ANN baselines drawn beside Loihi (compute-only and with weight reads, int8 and fp32).
ANN_BASELINES = ("ann-fp32-45nm", "ann-fp32-45nm-mem", "ann-int8-45nm", "ann-int8-45nm-mem")
LOIHI2_STATEMENT = ("Loihi 2 has no public per-operation energy figures: Intel publishes chip-level "
                    "results only. Every Loihi number here is Loihi 1 (Intel 14 nm, Davies et al., "
                    "IEEE Micro 2018), labelled as such.")
ANN_STATEMENT = ("ANN baselines price the same layers run as a dense ANN once per sample, shown "
                 "compute-only (arithmetic alone, Horowitz ISSCC 2014 at 45 nm: a lower bound that "
                 "flatters the ANN) and with memory access (one weight read per MAC from an SRAM "
                 "sized to the layer, '-mem' profiles). Compare the SNN with the with-memory figures.")
VALIDATION_STATEMENT = ("Two estimates per profile: per-op (the per-operation prices alone: the core's dynamic "
                        "energy) and, where a profile has labelled overhead terms, system (per-op + idle and host "
                        "power x time at the profile's stated step rate). Each has its own status, from the profile's "
                        "comparisons with measured whole networks (docs/energy_validation.md): 'validated': within 2x "
                        "of at least two measurements it was not fitted to; 'calibrated': within 2x of a measurement "
                        "one of its terms was fitted to, and not validated; 'not reproduced': compared, neither; "
                        "'not validated': no comparison.")
ESTIMATES_NOTE = ("per-op: the counted operations at the profile's per-operation prices (a core's dynamic energy); "
                  "system: per-op + the profile's labelled idle and host power x time per sample. Each status comes "
                  "from the profile's own comparisons with measured networks for that estimate; energy.json and "
                  "the report list them (docs/energy_validation.md).")
LOIHI2_MAP_STATEMENT = ("Loihi 2 map: an ESTIMATE from Intel's chip-level figures (128 neuron cores, 6 embedded "
                        "cores, up to 1M neurons and 120M synapses per chip); Intel publishes no per-core limit, "
                        "so the per-core limits used are assumptions, listed with the table.")
PER_OP = "per-op (core dynamic) / sample"  # the two estimate columns (spikeport.measure.energy.COLUMNS)
SYSTEM = "system (+ idle, host) / sample"
Table = tuple[list[str], list[list[str]]]
MAX_RUNS = 500  # run folders read when comparing runs


def load_reports(run_dir: str | Path) -> dict:
    """The run folder's JSON reports that exist: metrics, config, parity, energy."""
    run_dir = Path(run_dir)
    out = {}
    for key, name in (("metrics", runfolder.METRICS), ("config", runfolder.CONFIG), ("parity", runfolder.PARITY),
                      ("energy", runfolder.ENERGY)):
        if (run_dir / name).exists():
            out[key] = fileio.read_json(run_dir / name)
    return out


def fmt_j(joules: float) -> str:
    """Joules with an SI prefix, three significant digits: ``fmt_j(2.47e-6) == '2.47 uJ'``."""
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12), ("fJ", 1e-15)):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def fmt_n(count: float) -> str:
    """A per-sample count: thousands separators from 100 up, three significant digits below."""
    return f"{count:,.0f}" if abs(count) >= 100 else f"{count:.3g}"


def profile_kind(energy: dict, name: str) -> str:
    """What a profile prices, read from its energy breakdown terms."""
    terms = energy["breakdown"].get(name, {})
    if "dense_macs" not in terms:
        return "SNN"
    if "weight_reads" in terms:
        return "ANN + weight reads"
    return "ANN (device per-op)" if "ann_neuron_updates" in terms else "ANN compute-only"


def ordered_profiles(energy: dict) -> list[str]:
    """Profile names of ``energy`` in report order (known ones first, then the rest as given)."""
    names = list(energy["energy_j"])
    return [n for n in ENERGY_ORDER if n in names] + [n for n in names if n not in ENERGY_ORDER]


def summary_rows(rep: dict) -> list[tuple[str, str]]:
    """(label, value) rows for the short summary the CLI prints and report.md starts with."""
    rows: list[tuple[str, str]] = []
    p, e = rep.get("parity"), rep.get("energy")
    if p:
        regression = str(p.get("output", "")).startswith("values per step")  # values, no classes
        rows += [("network", f"{p['network']} (T={p['time_steps']}, {p['dataset']})"),
                 ("reference", str(p.get("reference", "quantized torch forward"))),
                 ("samples", str(p["samples"]))]
        if p.get("labels", "given") != "given":
            rows.append(("labels", str(p["labels"])))
        rows += [("float accuracy", pct(p["float_accuracy"], regression)),
                 ("reference accuracy", pct(p["reference_accuracy"], regression))]
        values = p.get("output_values")  # a value output: per step (regression), or read as classes (membrane)
        if values:
            rows.append(("output", str(p.get("output", "values per step"))))
        for c in p["comparisons"]:
            if "backend" in c and values and c.get("prediction_agreement") is None:
                rows.append((f"{c['backend']}", f"{c['samples_per_s']:.1f} samples/s"))
            elif "backend" in c:
                rows.append((f"{c['backend']} accuracy", f"{pct(c['backend_accuracy'])}  "
                             f"({c['samples_per_s']:.1f} samples/s, prediction agreement with the reference "
                             f"{c['prediction_agreement']:.2%})"))
        for pair, v in (values or {}).items():
            rows.append((f"output values {pair}", f"{v['fraction_equal']:.2%} of {v['values']} equal, largest "
                         f"|difference| {v['max_abs_difference']}"))
        for c in p["comparisons"]:
            if "spike_mismatches" in c:
                gated = c["pair"] in p.get("spike_pairs", [c["pair"]])
                rows.append((f"spike mismatches {c['pair']}", f"{c['spike_mismatches']}"
                             + ("" if gated else "  (float reference: information, not gated)")))
        if p.get("spike_check"):
            rows.append(("spike mismatches", p["spike_check"]))
        if p.get("state_mismatches") is not None:  # a Xylo run: Vmem / Isyn of the two backends at every step
            rows.append(("state mismatches " + p["backend"].replace(",", "-"), str(sum(p["state_mismatches"].values()))))
        rows.append(("parity", "PASS" if p.get("passed") else "FAIL"))
        if p.get("conventions"):
            c = p["conventions"]
            rows.append(("imported conventions", f"{c['producer']}, --reset {c['reset']}, "
                         f"--reset-timing {c['reset_timing']}"))
        if p.get("deployment"):
            d = p["deployment"]
            rows.append(("imported deployment", f"--readout {d['readout']}, --weight-bits {d['weight_bits']}"
                         + (" (two Loihi synapses per weight)" if d["weight_bits"] == 16 else "")))
        if p.get("scored_samples"):
            rows.append(("scored samples", samples_text(p["scored_samples"])))
        rows += finetune_rows(p)
        rows += [("graph note", note) for note in p.get("graph_notes", [])]
    if e:
        rows += [("SynOps / sample", f"{e['synops']:,.0f}"),
                 ("effective MACs / sample (graded input)", f"{e['effective_macs']:,.0f}"),
                 ("dense ANN MACs / sample", f"{e['dense_macs']:,.0f}")]
        for name in ordered_profiles(e):  # the two estimates, each with its own status
            v = validation_of(e, name)
            status = lambda col: f"  ({v[col]['status']})" if v.get(col) else ""  # noqa: E731
            rows.append((f"energy {name}, per-op", fmt_j(e["energy_j"][name]) + " / sample" + status("per_op")))
            if name in e.get("energy_j_with_overhead", {}):
                rows.append((f"energy {name}, system (+ idle, host)",
                             fmt_j(e["energy_j_with_overhead"][name]) + " / sample" + status("system")))
        rows.append(("Loihi 1 cores", f"{e['loihi_mapping']['total_cores']} "
                     f"({e['loihi_mapping']['chips']} chip(s))"))
        if e.get("loihi2_mapping"):
            rows.append(("Loihi 2 cores (estimate)", f"{e['loihi2_mapping']['total_cores']} "
                         f"({e['loihi2_mapping']['chips']} chip(s))"))
    return rows


def samples_text(s: dict) -> str:
    """An imported run's parity.json ``scored_samples``: how many were scored, and whether any was calibrated
    (or fine-tuned) on."""
    text = f"{s['scored']} ({s['file']})"
    for key, what in (("calibrated_among_scored", "calibrated on"), ("trained_among_scored", "fine-tuned on")):
        if key in s:
            k = s[key]
            text += f"; {'none' if not k else k} {what}" + (" (not a held-out figure)" if k else "")
    return text


def finetune_rows(parity: dict) -> list[tuple[str, str]]:
    """A fine-tuned imported run (importer.finetune): agreement of the integer reference with the producer
    on the samples parity ran, and import.json's before / after fine-tuning figures."""
    if not parity.get("finetuned"):
        return []
    ft = parity.get("finetune") or {}
    rows = [("agreement with the producer (float accuracy: the producer's)", pct(parity.get("producer_agreement")))]
    before, after = ft.get("before") or {}, ft.get("after") or {}
    if "prediction_agreement" in before and "prediction_agreement" in after:
        text = (f"{before['prediction_agreement']:.2%} -> {after['prediction_agreement']:.2%} agreement with the "
                f"producer")
        if "integer_accuracy" in after:
            text += (f"; accuracy {before['integer_accuracy']:.2%} -> {after['integer_accuracy']:.2%} (producer "
                     f"{after['producer_accuracy']:.2%})")
        rows.append((f"fine-tuning ({ft.get('epochs')} epochs on {ft.get('target')}; {ft.get('measured_on')})", text))
    return rows


def pct(value, regression: bool = False) -> str:
    """A fraction as a percentage; None says why there is no accuracy: no labels, or (``regression``) an
    output of values per step, not classes."""
    if value is None:
        return "n/a (a regression output: values per step)" if regression else "n/a (no labels: agreement only)"
    return f"{value:.2%}"


def parity_rows(parity: dict) -> Table:
    headers = ["comparison", "layer", "neurons", "spikes (a)", "spikes (b)", "mismatches"]
    rows = [[c["pair"], r["layer"], str(r["neurons"]), str(r["spikes_a"]), str(r["spikes_b"]), str(r["mismatches"])]
            for c in parity["comparisons"] for r in c.get("per_layer", [])]
    return headers, rows


def validation_of(energy: dict, name: str) -> dict:
    """A profile's validation entry; an energy.json written before validation existed says so."""
    default = {"status": "not validated", "summary": "not validated (energy.json has no validation; "
               "rerun spikeport energy)", "reference": "", "rows": []}
    return energy.get("validation", {}).get(name, default)


def estimate_status(energy: dict, name: str, column: str) -> str:
    """The status label of one estimate (``per_op`` or ``system``) of a profile, from its own rows; "-" where
    the profile has no such estimate. An energy.json written before the split says to rerun."""
    v = validation_of(energy, name)
    if column not in v:
        return "unknown (energy.json predates per-estimate statuses; rerun spikeport energy)"
    return "-" if v[column] is None else v[column]["label"]


def system_j(energy: dict, name: str) -> str:
    full = energy.get("energy_j_with_overhead", {}).get(name)
    return "-" if full is None else fmt_j(full)


def validation_rows(energy: dict) -> Table:
    """Every priced profile: each estimate with its own status, the profile's one-line summary and the basis
    of the system estimate."""
    headers = ["profile", PER_OP, "per-op status", SYSTEM, "system status", "how well", "basis"]
    rows = []
    for name in ordered_profiles(energy):
        v = validation_of(energy, name)
        rows.append([name, fmt_j(energy["energy_j"][name]), estimate_status(energy, name, "per_op"),
                     system_j(energy, name), estimate_status(energy, name, "system"), v["summary"],
                     energy.get("overhead_basis", {}).get(name, "-")])
    return headers, rows


def energy_rows(energy: dict) -> Table:
    """One row per profile: kind, the per-op and the system estimate per sample, each with its own status,
    per-op ratio to Loihi 1, source (short), quality."""
    headers = ["profile", "kind", PER_OP, "per-op status", SYSTEM, "system status", "ratio to loihi", "sources",
               "quality"]
    base = energy["energy_j"].get("loihi")
    rows = []
    for name in ordered_profiles(energy):
        joules = energy["energy_j"][name]
        prices = energy["prices"].get(name, {}).values()
        sources = sorted({f"{p['source'].split(',')[0]} {p.get('year') or ''}".strip() for p in prices})
        quality = sorted({p.get("quality", "unstated") for p in prices})
        ratio = f"{joules / base:.3g}" if base else "-"
        rows.append([name, profile_kind(energy, name), fmt_j(joules), estimate_status(energy, name, "per_op"),
                     system_j(energy, name), estimate_status(energy, name, "system"), ratio, "; ".join(sources),
                     "; ".join(quality)])
    return headers, rows


def energy_console_rows(energy: dict) -> Table:
    """:func:`energy_rows` narrowed to fit an 80-column terminal: the two estimates, each with its status word
    (the ratios, sources and the rows behind each status are in energy.json and the reports)."""
    headers, rows = energy_rows(energy)
    keep = [headers.index(h) for h in ("profile", "kind", PER_OP, "per-op status", SYSTEM, "system status")]
    return [headers[i] for i in keep], [[r[i].split(" (")[0] if "status" in headers[i] else r[i] for i in keep]
                                        for r in rows]


def layer_rows(energy: dict) -> Table:
    """Counts per layer (per sample), the layer's Loihi 1 energy and cores when known."""
    headers = ["layer", "neurons", "fan-in", "nonzero weights", "SynOps", "effective MACs", "dense ANN MACs",
               "updates active", "updates inactive", "spikes routed", "firing rate", "input sparsity",
               "Loihi 1 energy (per-op)", "Loihi 1 cores"]
    per_layer = energy.get("energy_j_per_layer", {}).get("loihi", {})
    cores = {m["name"]: m for m in energy.get("loihi_mapping", {}).get("layers", [])}
    rows = []
    for c in energy["counts"]["layers"]:
        m = cores.get(c["name"])
        rows.append([c["name"], str(c["n_out"]), str(c["n_in"]), f"{c['nnz'] + c.get('recurrent_nnz', 0):,}",
                     fmt_n(c["synops"]), fmt_n(c["effective_macs"]), fmt_n(c["dense_macs"]),
                     fmt_n(c["neuron_updates_active"]), fmt_n(c["neuron_updates_inactive"]),
                     fmt_n(c["spikes_out"]), f"{c['firing_rate']:.3f}", f"{c['activation_sparsity']:.3f}",
                     fmt_j(per_layer[c["name"]]) if c["name"] in per_layer else "-",
                     f"{m['cores']} ({m['binding']})" if m else "-"])
    return headers, rows


def layer_energy_rows(energy: dict) -> Table:
    """Energy per layer and profile (per sample), from energy.json's ``energy_j_per_layer``."""
    per_layer = energy.get("energy_j_per_layer", {})
    names = [n for n in ordered_profiles(energy) if n in per_layer]
    layers = [c["name"] for c in energy["counts"]["layers"]]
    return ["layer", *names], [[layer, *[fmt_j(per_layer[n][layer]) for n in names]] for layer in layers]


def source_rows(energy: dict) -> Table:
    """Every price used: profile, what it prices, value, source, year, quality, note."""
    headers = ["profile", "price", "value", "source", "year", "quality", "note"]
    rows = []
    for name in ordered_profiles(energy):
        for price, p in energy["prices"].get(name, {}).items():
            unit = "per MAC (this run's average)" if price == "weight_read" else "per op"
            rows.append([name, price, f"{fmt_j(p['value_j'])} {unit}", p["source"], str(p.get("year") or "-"),
                         p.get("quality", "unstated"), p.get("note", "")])
    return headers, rows


def mapping_rows(energy: dict) -> Table:
    headers = ["layer", "cores", "binding constraint", "synapse format", "synaptic memory", "neurons / core"]
    rows = [[m["name"], str(m["cores"]), m["binding"], m["synapse_format"], f"{m['synaptic_memory_bytes']:,} B",
             str(m["neurons_per_core"])] for m in energy["loihi_mapping"]["layers"]]
    return headers, rows


def loihi2_mapping_rows(energy: dict) -> Table:
    """The Loihi 2 estimate per layer: cores, the binding limit, cores each limit alone needs."""
    headers = ["layer", "cores (estimate)", "binding", "cores by neurons", "cores by synapses", "fan-in splits",
               "neurons / core"]
    rows = [[m["name"], str(m["cores"]), m["binding"], str(m["cores_by_constraint"]["neurons"]),
             str(m["cores_by_constraint"]["synapses"]), str(m["cores_by_constraint"]["fan_in"]),
             str(m["neurons_per_core"])] for m in energy["loihi2_mapping"]["layers"]]
    return headers, rows


def collect_runs(parent: str | Path, include: str | Path | None = None) -> tuple[list[dict], list[str]]:
    """Accuracy and energy of every run folder directly inside ``parent`` (plus ``include``).

    A run counts when it holds both parity.json and energy.json with a Loihi energy. Returns
    ``(runs, skipped)``: runs as ``{"name", "path", "network", "time_steps", "dataset", "backend",
    "accuracy" (backend accuracy, 0..1), "energy_j": {profile: J per sample}}`` sorted by name,
    and one line per folder that has the files but could not be read.
    """
    parent = Path(parent)
    folders = sorted(d for d in parent.iterdir() if d.is_dir()) if parent.is_dir() else []
    if include is not None and Path(include).resolve() not in {d.resolve() for d in folders}:
        folders.append(Path(include))
    runs, skipped = [], []
    for d in folders[:MAX_RUNS]:
        if not ((d / runfolder.PARITY).is_file() and (d / runfolder.ENERGY).is_file()):
            continue
        try:
            p, e = fileio.read_json(d / runfolder.PARITY), fileio.read_json(d / runfolder.ENERGY)
            main = next(c for c in p["comparisons"] if "backend" in c)
            if main["backend_accuracy"] is None:
                raise SpikeportError("parity.json has no accuracy (no labels)")
            if "loihi" not in e["energy_j"]:
                raise SpikeportError("energy.json has no 'loihi' profile")
            runs.append({"name": d.name, "path": str(d), "network": str(p["network"]),
                         "time_steps": int(p["time_steps"]), "dataset": str(p["dataset"]),
                         "backend": str(main["backend"]), "accuracy": float(main["backend_accuracy"]),
                         "energy_j": {str(k): float(v) for k, v in e["energy_j"].items()}})
        except (SpikeportError, KeyError, TypeError, ValueError, AttributeError, StopIteration) as err:
            skipped.append(f"{d.name}: {err if isinstance(err, SpikeportError) else 'unexpected report layout'}")
    if len(folders) > MAX_RUNS:
        skipped.append(f"only the first {MAX_RUNS} of {len(folders)} folders were read")
    return runs, skipped


def runs_rows(runs: list[dict]) -> Table:
    headers = ["run", "network", "T", "dataset", "backend", "accuracy", "Loihi 1 energy (per-op)", *ANN_BASELINES]
    rows = [[r["name"], r["network"], str(r["time_steps"]), r["dataset"], r["backend"], f"{r['accuracy']:.2%}",
             fmt_j(r["energy_j"]["loihi"]), *[fmt_j(r["energy_j"][n]) if n in r["energy_j"] else "-"
                                                for n in ANN_BASELINES]] for r in runs]
    return headers, rows


def _md_table(table: Table) -> list[str]:
    headers, rows = table

    def cell(text: str) -> str:
        return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def render(run_dir: str | Path, compare: str | Path | None = None) -> str:
    """report.md text; ``compare``: folder whose runs are compared (default: the run's parent)."""
    run_dir = Path(run_dir)
    rep = load_reports(run_dir)
    lines = [f"# spikeport report: {run_dir.name}", "", *_md_table((["", ""], [list(r) for r in summary_rows(rep)]))]
    p, e = rep.get("parity"), rep.get("energy")
    if p:
        lines += ["", "## Parity per layer (quantized PyTorch reference vs backend)", "", *_md_table(parity_rows(p))]
        if p.get("first_divergence"):
            lines += ["", f"First divergence: `{p['first_divergence']}`"]
    if e:
        lines += ["", "## Operations per layer (per sample)", "", *_md_table(layer_rows(e)),
                  "", "## Energy per sample", "", *_md_table(energy_rows(e)),
                  "", f"- {LOIHI2_STATEMENT}", f"- {ANN_STATEMENT}"]
        if e.get("energy_j_per_layer"):
            lines += ["", "## Energy per layer (per sample)", "", *_md_table(layer_energy_rows(e))]
        lines += ["", "## Validation of the energy profiles", "", *_md_table(validation_rows(e)),
                  "", f"- {VALIDATION_STATEMENT}"]
        lines += ["", "## Loihi 1 mapping", "", *_md_table(mapping_rows(e))]
        if e.get("loihi2_mapping"):
            m2 = e["loihi2_mapping"]
            lines += ["", "## Loihi 2 mapping (estimate)", "", f"{m2['total_cores']} neuron cores on "
                      f"{m2['chips']} chip(s) (estimate).", "", *_md_table(loihi2_mapping_rows(e)), "",
                      f"- {LOIHI2_MAP_STATEMENT}", *[f"- {a}" for a in m2.get("assumptions", [])]]
    runs, skipped = collect_runs(Path(compare) if compare else run_dir.resolve().parent, include=run_dir)
    if runs:
        lines += ["", "## Accuracy vs energy across runs", "", *_md_table(runs_rows(runs))]
        lines += [f"- skipped {s}" for s in skipped]
    from spikeport.report import chips

    pair = chips.find_pair(run_dir, compare)
    if pair:
        table, notes = chips.chip_table(*pair)
        lines += ["", "## Loihi vs Xylo Audio 2 (the same network on each chip)", "", *_md_table(table),
                  *[f"- {n}" for n in notes]]
    if e:
        lines += ["", "## Sources of the prices", "", *_md_table(source_rows(e)), "",
                  *[f"- {n}" for n in e.get("notes", [])]]
    return "\n".join(lines) + "\n"


def write(run_dir: str | Path, compare: str | Path | None = None) -> Path:
    path = Path(run_dir) / runfolder.REPORT_MD
    fileio.write_text(path, render(run_dir, compare))
    return path
