"""report.md from a run folder's JSON files (metrics, parity, energy)."""
from __future__ import annotations

from pathlib import Path

from spikeport import fileio

ENERGY_ORDER = ("loihi", "loihi-kerasspiking", "truenorth", "spinnaker2", "spinnaker",
                "ann-int8-45nm", "ann-int8-45nm-mem", "ann-fp32-45nm", "ann-fp32-45nm-mem", "gpu", "cpu", "arm")


def load_reports(run_dir: str | Path) -> dict:
    """The run folder's JSON reports that exist: metrics, config, parity, energy."""
    run_dir = Path(run_dir)
    out = {}
    for key, name in (("metrics", "metrics.json"), ("config", "config.json"), ("parity", "parity.json"),
                      ("energy", "energy.json")):
        if (run_dir / name).exists():
            out[key] = fileio.read_json(run_dir / name)
    return out


def fmt_j(joules: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def summary_rows(rep: dict) -> list[tuple[str, str]]:
    """(label, value) rows for the short summary the CLI prints and report.md starts with."""
    rows: list[tuple[str, str]] = []
    p, e = rep.get("parity"), rep.get("energy")
    if p:
        rows += [("network", f"{p['network']} (T={p['time_steps']}, {p['dataset']})"),
                 ("samples", str(p["samples"])),
                 ("float accuracy", f"{p['float_accuracy']:.2%}"),
                 ("quantized reference accuracy", f"{p['reference_accuracy']:.2%}")]
        for c in p["comparisons"]:
            if "backend" in c:
                rows.append((f"{c['backend']} accuracy", f"{c['backend_accuracy']:.2%}  "
                             f"({c['samples_per_s']:.1f} samples/s)"))
        for c in p["comparisons"]:
            rows.append((f"spike mismatches {c['pair']}", f"{c['spike_mismatches']}  "
                         f"(prediction agreement {c['prediction_agreement']:.2%})"))
        rows.append(("parity", "PASS" if p.get("passed") else "FAIL"))
    if e:
        rows += [("SynOps / sample", f"{e['synops']:,.0f}"),
                 ("effective MACs / sample (graded input)", f"{e['effective_macs']:,.0f}"),
                 ("dense ANN MACs / sample", f"{e['dense_macs']:,.0f}")]
        for name in ENERGY_ORDER:
            if name in e["energy_j"]:
                rows.append((f"energy {name}", fmt_j(e["energy_j"][name]) + " / sample"))
        rows.append(("Loihi 1 cores", f"{e['loihi_mapping']['total_cores']} "
                     f"({e['loihi_mapping']['chips']} chip(s))"))
    return rows


def render(run_dir: str | Path) -> str:
    rep = load_reports(run_dir)
    lines = [f"# spikeport report: {Path(run_dir).name}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(rep)]
    p = rep.get("parity")
    if p:
        lines += ["", "## Parity per layer (quantized PyTorch reference vs backend)", "",
                  "| comparison | layer | neurons | spikes (a) | spikes (b) | mismatches |", "|---|---|---|---|---|---|"]
        for c in p["comparisons"]:
            for row in c["per_layer"]:
                lines.append(f"| {c['pair']} | {row['layer']} | {row['neurons']} | {row['spikes_a']} | "
                             f"{row['spikes_b']} | {row['mismatches']} |")
        if p.get("first_divergence"):
            lines += ["", f"First divergence: `{p['first_divergence']}`"]
    e = rep.get("energy")
    if e:
        lines += ["", "## Energy per sample", "", "| profile | energy | price source |", "|---|---|---|"]
        for name, joules in e["energy_j"].items():
            src = "; ".join(sorted({f"{k}: {v['source']} ({v.get('quality', '')})" for k, v in e["prices"][name].items()}))
            lines.append(f"| {name} | {fmt_j(joules)} | {src} |")
        lines += ["", *[f"- {n}" for n in e.get("notes", [])]]
    return "\n".join(lines) + "\n"


def write(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "report.md"
    fileio.write_text(path, render(run_dir))
    return path
