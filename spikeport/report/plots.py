"""The report's figures as PNG bytes, drawn with matplotlib on an Agg canvas (no pyplot, no global
state). Each function takes plain data from the run folder's reports and returns the PNG; none
reads files. Counts and energies are per sample, as in energy.json.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from spikeport.report.markdown import fmt_j

DPI = 100
WIDTH_IN = 10.5  # inches at DPI: about the width of the page's content column
KIND_COLORS = {"SNN": "#1f6fb4", "ANN compute-only": "#f2a541", "ANN + weight reads": "#b5540c",
               "ANN (device per-op)": "#9a9a9a"}
OPS_COLORS = {"synops": "#1f6fb4", "effective_macs": "#6baed6", "dense_macs": "#b5540c"}
RASTER_COLORS = {"both": (0.12, 0.16, 0.22), "only_here": (0.84, 0.15, 0.16), "only_other": (0.98, 0.75, 0.75)}
# Marker and colour of each ANN baseline in the accuracy-vs-energy plot: (marker, filled, colour).
BASELINE_STYLE = {"ann-fp32-45nm": ("s", False, KIND_COLORS["ANN compute-only"]),
                  "ann-fp32-45nm-mem": ("s", True, KIND_COLORS["ANN + weight reads"]),
                  "ann-int8-45nm": ("^", False, KIND_COLORS["ANN compute-only"]),
                  "ann-int8-45nm-mem": ("^", True, KIND_COLORS["ANN + weight reads"])}
# Bars of the same baselines: (face, edge, hatch); fp32 and int8 differ by hatch.
BASELINE_BARS = {"ann-fp32-45nm": ("white", KIND_COLORS["ANN compute-only"], "///"),
                 "ann-fp32-45nm-mem": (KIND_COLORS["ANN + weight reads"], KIND_COLORS["ANN + weight reads"], None),
                 "ann-int8-45nm": ("white", KIND_COLORS["ANN compute-only"], "..."),
                 "ann-int8-45nm-mem": (KIND_COLORS["ANN + weight reads"], "white", "...")}


def _t(text) -> str:
    """A label from a file, shown literally: "$" would start matplotlib's math text."""
    return str(text).replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _bar_labels(ax, bars, texts: list[str]) -> None:
    for bar, text in zip(bars, texts):
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)


def operations(layers: list[dict], energy_per_step: list[float] | None = None) -> bytes:
    """Per layer: SynOps, effective MACs and dense ANN MACs; per time step: events in each layer.

    ``layers``: energy.json's ``counts.layers``; ``energy_per_step``: Loihi 1 joules per step.
    """
    panels = 3 if energy_per_step else 2
    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, gridspec_kw={"width_ratios": [1.2, 1, 1][:panels]})
    names = [_t(c["name"]) for c in layers]
    x = np.arange(len(names))
    series = (("synops", "SynOps (spike x nonzero fan-out)"), ("effective_macs", "effective MACs (graded input)"),
              ("dense_macs", "dense ANN MACs (once per sample)"))
    width = 0.8 / len(series)
    for k, (key, label) in enumerate(series):
        values = [c[key] for c in layers]
        bars = axes[0].bar(x + (k - 1) * width, values, width, label=label, color=OPS_COLORS[key])
        _bar_labels(axes[0], bars, [f"{v:,.0f}" if v else "" for v in values])
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel("operations / sample")
    axes[0].set_title("operations per layer", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    axes[0].margins(y=0.1)
    steps = np.arange(len(layers[0]["per_step"]["synops"]))
    for c in layers:
        ev = np.add(c["per_step"]["synops"], c["per_step"]["effective_macs"])
        axes[1].plot(steps, ev, marker=".", label=_t(c["name"]) + (" (effective MACs)" if c["graded_input"] else " (SynOps)"))
    axes[1].set_xlabel("time step")
    axes[1].set_ylabel("operations / sample")
    axes[1].set_title("operations per time step", fontsize=10)
    axes[1].legend(fontsize=7, frameon=False)
    if energy_per_step:
        axes[2].plot(steps, np.asarray(energy_per_step) * 1e9, color=KIND_COLORS["SNN"], marker=".")
        axes[2].set_xlabel("time step")
        axes[2].set_ylabel("nJ / sample")
        axes[2].set_title("Loihi 1 per-op energy per time step", fontsize=10)
        axes[2].set_ylim(bottom=0)
    return _png(fig)


def activity(layers: list[dict]) -> bytes:
    """Firing rate and input sparsity per layer, and each layer's firing rate per time step."""
    fig = Figure(figsize=(WIDTH_IN, 3.3), layout="constrained")
    ax, ax_t = fig.subplots(1, 2)
    names = [_t(c["name"]) for c in layers]
    x = np.arange(len(names))
    rates = [c["firing_rate"] for c in layers]
    sparsity = [c["activation_sparsity"] for c in layers]
    b1 = ax.bar(x - 0.2, rates, 0.4, label="firing rate (spikes / neuron / step)", color=KIND_COLORS["SNN"])
    b2 = ax.bar(x + 0.2, sparsity, 0.4, label="input activation sparsity (zero fraction)", color="#bdbdbd")
    _bar_labels(ax, b1, [f"{r:.3f}" for r in rates])
    _bar_labels(ax, b2, [f"{s:.3f}" for s in sparsity])
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.set_title("activity per layer", fontsize=10)
    for c in layers:
        ax_t.plot(np.asarray(c["per_step"]["spikes_out"]) / c["n_out"], marker=".", label=_t(c["name"]))
    ax_t.set_xlabel("time step")
    ax_t.set_ylabel("spikes / neuron")
    ax_t.set_ylim(bottom=0)
    ax_t.set_title("firing rate per time step", fontsize=10)
    ax_t.legend(fontsize=7, frameon=False)
    return _png(fig)


def energy_by_profile(rows: list[tuple[str, str, float]]) -> bytes:
    """Horizontal bars (log scale) of the per-op energy estimate per sample; ``rows``: (profile, kind, joules)."""
    fig = Figure(figsize=(WIDTH_IN, 0.32 * len(rows) + 1.3), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    values = [max(j, 1e-18) for _, _, j in rows]
    ax.barh(y, values, color=[KIND_COLORS.get(k, "#666666") for _, k, _ in rows])
    for yi, (_, _, j) in zip(y, rows):
        ax.annotate(fmt_j(j), (max(j, 1e-18), yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, [_t(name) for name, _, _ in rows])
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 3, max(values) * 12)
    ax.set_xlabel("joules per sample (log scale)")
    kinds = list(dict.fromkeys(k for _, k, _ in rows))
    fig.legend(handles=[Patch(color=KIND_COLORS.get(k, "#666666"), label=k) for k in kinds], fontsize=8,
               loc="outside lower center", ncols=len(kinds), frameon=False)
    ax.set_title("per-op estimate (core dynamic) per sample by device profile (Loihi = Loihi 1; no public "
                 "Loihi 2 per-op figures)", fontsize=10)
    return _png(fig)


def energy_per_layer(per_layer: dict[str, dict[str, float]], layers: list[str], kinds: dict[str, str]) -> bytes:
    """Grouped bars (log scale): each layer's energy per sample on each profile in ``per_layer``."""
    fig = Figure(figsize=(WIDTH_IN, 3.4), layout="constrained")
    ax = fig.subplots()
    names = list(per_layer)
    x = np.arange(len(layers))
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        values = [max(per_layer[name][layer], 1e-18) for layer in layers]
        color = KIND_COLORS.get(kinds.get(name, ""), "#666666")
        face, edge, hatch = BASELINE_BARS.get(name, (color, color, None))
        ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=_t(name), hatch=hatch,
               color=face, edgecolor=edge)
    ax.set_xticks(x, [_t(layer) for layer in layers])
    ax.set_yscale("log")
    ax.set_ylabel("joules per sample (log scale)")
    ax.legend(fontsize=8, ncols=min(len(names), 5), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.set_title("energy per layer: Loihi 1 vs ANN baselines (light: compute-only, dark: with weight reads; "
                 "/// fp32, ... int8)",
                 fontsize=10)
    return _png(fig)


def raster(layers: list[str], ref: list[np.ndarray], other: list[np.ndarray], other_label: str,
           title: str) -> bytes:
    """Spikes of one sample, every layer: the quantized PyTorch reference (left) and a backend (right).

    ``ref``/``other``: per layer ``[T, N]`` bool. A spike on both sides is dark; a spike on one side
    only is red on that side and pale red on the other. Rows (neurons) are averaged when a layer
    has more neurons than the panel has pixels.
    """
    heights = [float(np.clip(r.shape[1] / 40, 0.9, 3.2)) for r in ref]
    fig = Figure(figsize=(WIDTH_IN, sum(heights) + 1.4), layout="constrained")
    axes = fig.subplots(len(layers), 2, squeeze=False, gridspec_kw={"height_ratios": heights})
    for i, name in enumerate(layers):
        a, b = np.asarray(ref[i], bool), np.asarray(other[i], bool)
        mismatches = int((a != b).sum())
        for j, (here, there, side) in enumerate(((a, b, "PyTorch quantized reference"), (b, a, other_label))):
            ax = axes[i, j]
            ax.imshow(_raster_rgb(here, there), aspect="auto", origin="lower",
                      interpolation="nearest" if here.shape[1] <= 300 else "antialiased",
                      extent=(-0.5, here.shape[0] - 0.5, -0.5, here.shape[1] - 0.5))
            ax.set_title(f"{_t(side)}: {_t(name)} ({here.shape[1]} neurons, {int(here.sum())} spikes, "
                         f"{mismatches} mismatches)", fontsize=9)
            ax.set_ylabel("neuron", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
            if i == len(layers) - 1:
                ax.set_xlabel("time step", fontsize=8)
    fig.suptitle(_t(title), fontsize=10)
    fig.legend(handles=[Patch(color=RASTER_COLORS["both"], label="spike on both sides"),
                        Patch(color=RASTER_COLORS["only_here"], label="spike on this side only"),
                        Patch(color=RASTER_COLORS["only_other"], label="spike on the other side only")],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _png(fig)


def _raster_rgb(here: np.ndarray, there: np.ndarray) -> np.ndarray:
    """``[N, T, 3]`` float image of one side's spikes (``here``) against the other's (``[T, N]`` bool)."""
    img = np.ones(here.T.shape + (3,))
    img[(here & there).T] = RASTER_COLORS["both"]
    img[(here & ~there).T] = RASTER_COLORS["only_here"]
    img[(~here & there).T] = RASTER_COLORS["only_other"]
    return img


def accuracy_vs_energy(runs: list[dict], current: str) -> bytes:
    """Backend accuracy vs Loihi 1 energy per sample for each run, with its ANN baselines.

    ``runs``: from :func:`spikeport.report.markdown.collect_runs`. The ANN points price the same
    layers as a dense ANN; no ANN was trained, so they sit at the run's own accuracy.
    """
    fig = Figure(figsize=(WIDTH_IN, 5.0), layout="constrained")
    ax = fig.subplots()
    for r in runs:
        acc = r["accuracy"]
        xs = [r["energy_j"]["loihi"], *[r["energy_j"][n] for n in BASELINE_STYLE if n in r["energy_j"]]]
        ax.plot([min(xs), max(xs)], [acc, acc], color="#cccccc", lw=1, zorder=1)
        for name, (marker, filled, color) in BASELINE_STYLE.items():
            if name in r["energy_j"]:
                ax.scatter(r["energy_j"][name], acc, marker=marker, s=46, zorder=2, linewidths=1.4,
                           facecolors=color if filled else "white", edgecolors=color)
        is_current = r["name"] == current
        ax.scatter(r["energy_j"]["loihi"], acc, s=110 if is_current else 60, color=KIND_COLORS["SNN"], zorder=3,
                   edgecolors="black" if is_current else "none", linewidths=1.5)
        ax.annotate(_t(f"{r['name']} ({r['network']}, T={r['time_steps']})"), (r["energy_j"]["loihi"], acc),
                    xytext=(6, 6), textcoords="offset points", fontsize=8,
                    fontweight="bold" if is_current else "normal")
    handles = [ax.scatter([], [], s=60, color=KIND_COLORS["SNN"], label="SNN on Loihi 1 (backend accuracy)")]
    handles += [ax.scatter([], [], marker=m, s=46, facecolors=c if f else "white", edgecolors=c, linewidths=1.4,
                           label=name + (" (with weight reads)" if f else " (compute-only)"))
                for name, (m, f, c) in BASELINE_STYLE.items()]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    accs = [r["accuracy"] for r in runs]
    pad = max(0.02, (max(accs) - min(accs)) * 0.15)
    ax.set_ylim(max(0.0, min(accs) - pad), min(1.0, max(accs) + pad) + 0.005)
    ax.set_xlabel("joules per sample (log scale)")
    ax.set_ylabel("backend accuracy")
    ax.set_title("accuracy vs energy per sample, one row of points per run", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    return _png(fig)
