"""The moving Fashion-MNIST task of docs/results.md: a dense ANN, a sigma-delta network (SDNN) and a CUBA LIF
network on images that drift by at most one pixel per step (``encoder = "moving"``, T = 16), with accuracy and
messages / synaptic operations per frame.

Every number comes from run folders ``spikeport train`` wrote (each trained on 54,000 images, the other 6,000
of the training set held out: ``validation = 0.1``) and from the commands below; nothing is chosen on the test set.

1. ``sweep SDRUN...``: for each trained sigma-delta run, the delta thresholds (hidden: a fraction of each
   layer's activation range; input: of full scale) swept on its *validation* split with the Loihi-integer
   forward: accuracy, messages and SynOps per frame (``sweep.json`` in the run folder).
2. ``select ANNRUN SDRUN... --lif LIFRUN... --out DIR``: the SDNN setting with the fewest SynOps per frame
   whose validation accuracy is within ``--tolerance`` (0.5) points of the ANN's, written as a run folder
   ``DIR/sdnn`` (the same weights, those thresholds: ``checkpoint.save``); the LIF run with the best
   validation accuracy, linked as ``DIR/lif``; the ANN as ``DIR/ann``. ``selection.json`` says why.
3. For each of ``DIR/{ann,sdnn,lif}``: ``spikeport export`` (``--netx`` for the SD runs), ``spikeport parity
   --backend emulator`` (the 10,000 test images), ``parity --backend lava[,netx] --samples 200``,
   ``spikeport energy --samples 1000`` (``benchmarks/sdnn_pipeline.sh`` runs them).
4. ``table DIR --write docs/results.md``: the table between the document's ``sdnn_moving`` markers and
   ``docs/sdnn_moving.png`` (accuracy against SynOps per frame; messages per frame along the sequence).

Counting (``spikeport energy``, NeuroBench's rule: a nonzero input event times its nonzero fan-out): a
sigma-delta message is a nonzero payload (a change that passed its threshold), a LIF message a spike, the
LIF's input a nonzero pixel current at every step; the dense ANN runs every weight of every layer on every
frame (``dense_macs``). Per frame = per sample / T.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HIDDEN_GRID = (0.0, 0.02, 0.05, 0.1)  # sd_threshold: fraction of a layer's a_max
INPUT_GRID = (0.0, 0.02, 0.05)  # sd_input_threshold: fraction of full scale
SWEEP_IMAGES = 2000  # of the 6,000 validation images (the first ones; the sweep's cost)


def _fanouts(net) -> list[np.ndarray]:
    """Per population, the nonzero fan-out of each neuron into the next population (zeros for the last)."""
    out = []
    for i, pop in enumerate(net.populations):
        if i + 1 < len(net.populations):
            mat = net.populations[i + 1].input.to_matrix()
            out.append(np.diff(mat.tocsc().indptr).astype(np.int64))
        else:
            out.append(np.zeros(pop.size, np.int64))
    return out


def measure(model, cfg, x: np.ndarray, y: np.ndarray, batch: int = 500) -> dict:
    """Integer-forward accuracy (last step), messages and SynOps per frame on (x, y) of a sigma-delta model."""
    import torch

    from spikeport.data import encode
    from spikeport.train.sd_loop import INPUT_SEED

    enc = encode(np.asarray(x), cfg.time_steps, cfg.encoder, seed=INPUT_SEED)
    fan = _fanouts(model.loihi_net(cfg.time_steps))
    correct, msgs, ops = 0, np.zeros(len(fan)), np.zeros(len(fan))
    for i in range(0, len(y), batch):
        outs = model.forward_int(torch.from_numpy(enc[:, i:i + batch].astype(np.int64)))
        correct += int((outs[-1][-1].argmax(1).numpy() == y[i:i + batch]).sum())
        for k, o in enumerate(outs):
            sent = (o.numpy() != 0)
            msgs[k] += sent.sum()
            ops[k] += (sent.sum(axis=(0, 1)) * fan[k]).sum()
    per_frame = len(y) * cfg.time_steps
    return {"accuracy": correct / len(y), "messages_per_frame": (msgs / per_frame).round(2).tolist(),
            "synops_per_frame": float(ops.sum() / per_frame)}


def sweep(run: Path) -> dict:
    from spikeport.core import sd_quant
    from spikeport.train import checkpoint

    model, cfg, _ = checkpoint.load(run)
    ds = checkpoint.dataset_for(cfg)  # the validation split as its test split (cfg.validation > 0)
    if not cfg.validation:
        raise SystemExit(f"{run}: trained without a validation split; the sweep never looks at the test set")
    rows = []
    for tin in INPUT_GRID:
        for th in HIDDEN_GRID:
            model.threshold, model.input_vth = th, sd_quant.input_vth(tin, model.levels)
            rows.append({"sd_threshold": th, "sd_input_threshold": tin,
                         **measure(model, cfg, ds.x_test[:SWEEP_IMAGES], ds.y_test[:SWEEP_IMAGES])})
            print(run.name, rows[-1], flush=True)
    res = {"run": str(run), "split": f"validation (the first {min(SWEEP_IMAGES, len(ds.y_test))} images)",
           "rows": rows}
    (run / "sweep.json").write_text(json.dumps(res, indent=1))
    return res


# what a copied run leaves behind: its training state and what export / parity / energy wrote (model.safetensors,
# the weights, goes with it)
_EXPORTS = shutil.ignore_patterns("checkpoint", "model.nir", "model.net", "model.onnx", "parity*", "energy*")


def select(ann: Path, sds: list[Path], lifs: list[Path], out: Path, tolerance: float) -> dict:
    from spikeport.train import checkpoint

    ann_sweep = json.loads((ann / "sweep.json").read_text())
    base = next(r for r in ann_sweep["rows"] if r["sd_threshold"] == 0 and r["sd_input_threshold"] == 0)
    floor = base["accuracy"] - tolerance / 100
    cands = [(r["synops_per_frame"], -r["accuracy"], str(run), r) for run in sds
             for r in json.loads((run / "sweep.json").read_text())["rows"] if r["accuracy"] >= floor]
    _, _, best_run, best = min(cands)
    model, cfg, _ = checkpoint.load(best_run)
    cfg.sd_threshold, cfg.sd_input_threshold = best["sd_threshold"], best["sd_input_threshold"]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sdnn", "ann", "lif"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    checkpoint.save(out / "sdnn", model, cfg, int(np.prod(model.input_shape)), model.layers[-1].geom.channels,
                    model.input_shape)
    shutil.copy(Path(best_run) / "metrics.json", out / "sdnn" / "metrics.json")
    shutil.copytree(ann, out / "ann", ignore=_EXPORTS)
    lif_acc = {str(r): json.loads((r / "metrics.json").read_text())["quantized_accuracy"] for r in lifs}
    best_lif = max(lif_acc, key=lif_acc.get)
    shutil.copytree(best_lif, out / "lif", ignore=_EXPORTS)
    res = {"rule": f"sigma-delta: fewest SynOps per frame with validation accuracy >= ANN's - {tolerance} points "
                   f"(ANN {100 * base['accuracy']:.2f}%); LIF: best validation accuracy (integer forward)",
           "ann": {"run": str(ann), **base}, "sdnn": {"run": best_run, **best},
           "lif": {"run": best_lif, "validation_accuracy": lif_acc[best_lif], "candidates": lif_acc}}
    (out / "selection.json").write_text(json.dumps(res, indent=1))
    return res


BEGIN, END = "<!-- sdnn_moving.py: begin -->", "<!-- sdnn_moving.py: end (generated) -->"


def _load(run: Path, name: str) -> dict:
    path = run / name
    return json.loads(path.read_text()) if path.exists() else {}


def _costs(energy: dict) -> dict:
    """Per frame: messages (every population's nonzero outputs, and a LIF's nonzero input currents), SynOps
    (binary + graded events times their nonzero fan-out), the dense ANN's MACs; per-step SynOps."""
    t, steps = energy["counts"]["totals"], energy["time_steps"]
    first = energy["counts"]["layers"][0]
    host = 0.0 if first.get("n_in", 0) == 0 else first["input_events"]  # a LIF's input currents, every step
    per_step = np.add(energy["counts"]["per_step"]["synops"], energy["counts"]["per_step"]["effective_macs"])
    return {"messages": (t["spikes_out"] + host) / steps, "synops": (t["synops"] + t["effective_macs"]) / steps,
            "dense_macs": t["dense_macs"], "per_step": per_step.tolist(),
            "uj": energy["energy_j"].get("loihi", float("nan")) * 1e6}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _test_acc(run: Path) -> str:
    """'float / Loihi integers (images)' on the test set: test_metrics.json's float forward (every test image)
    and parity_emulator.json's integer reference (the images parity ran)."""
    emu, tm = _load(run, "parity_emulator.json"), _load(run, "test_metrics.json")
    ints = f"{_pct(emu['reference_accuracy'])} ({emu['samples']:,})" if emu else "-"
    return f"{_pct(tm.get('float_accuracy'))} / {ints}"


def _parity(run: Path) -> str:
    """Lava / netx on Lava (parity_lava.json, few images) and the emulator (parity_emulator.json) against the
    integer reference: mismatching payloads or spikes."""
    cells = []
    for name in ("parity_lava.json", "parity_emulator.json"):
        p = _load(run, name)
        pairs = [c for c in p.get("comparisons", []) if c.get("pair", "").startswith("reference-")
                 and not (name == "parity_lava.json" and c["pair"] == "reference-emulator")]
        cells += [f"{c['pair'].split('-', 1)[1]} {c['spike_mismatches']} ({p['samples']:,} img.)" for c in pairs]
    return ", ".join(cells) or "-"


def _command(run: Path) -> str:
    """The training command: the run's config file with the flags that reduced it (limit, epochs)."""
    src = (run / "source_config.txt").read_text().strip() if (run / "source_config.txt").exists() else "?"
    cfg = json.loads((run / "config.json").read_text())["config"]
    return f"`spikeport train --config {src} --limit {cfg['limit']} --epochs {cfg['epochs']}`" \
        if cfg.get("limit") else f"`spikeport train --config {src} --epochs {cfg['epochs']}`"


def table_rows(folder: Path) -> tuple[list[str], dict]:
    sel = json.loads((folder / "selection.json").read_text())
    ann, sdnn, lif = (folder / n for n in ("ann", "sdnn", "lif"))
    ca, cs, cl = (_costs(_load(r, "energy.json")) for r in (ann, sdnn, lif))
    dense = ca["dense_macs"]
    rows = []

    def row(name, sent, val, test, parity, msgs, cost, note, cmd):
        rows.append(f"| {name} | {sent} | {val} | {test} | {parity} | {msgs} | {cost:,.0f} | {cost / dense:.3f} | "
                    f"{note} | {cmd} |")

    k = json.loads((ann / "config.json").read_text())["config"]
    neurons = int(np.prod(json.loads((ann / "config.json").read_text()).get("input_shape", [784]))) \
        + sum(k["hidden"]) + 10
    ma = _load(ann, "metrics.json")
    row(f"dense ANN (fc 784-{'-'.join(map(str, k['hidden']))}-10, ReLU)", "every activation, every frame",
        f"{_pct(ma.get('float_accuracy'))} (float; {ma.get('test_samples', 0):,})",
        f"{_pct(_load(ann, 'test_metrics.json').get('float_accuracy'))} / -", "-", f"{neurons:,}", dense,
        "the ANN run's float weights, every frame computed densely (dense MACs)", _command(ann))
    for run, c, name, key in ((ann, ca, "SDNN, no thresholds (the ANN's weights)", "ann"),
                              (sdnn, cs, "SDNN, thresholds + message penalty", "sdnn")):
        k = json.loads((run / "config.json").read_text())["config"]
        n_val = int(_load(Path(sel[key]["run"]), "metrics.json").get("test_samples", 0))
        row(name, "changes only (graded deltas)", f"{_pct(sel[key]['accuracy'])} ({min(n_val, SWEEP_IMAGES):,})",
            _test_acc(run), _parity(run), f"{c['messages']:,.0f}", c["synops"],
            f"thresholds: input {k['sd_input_threshold']} of full scale, hidden {k['sd_threshold']} of a_max; "
            f"penalty {k['sd_message_penalty']}; {c['uj']:.2f} uJ/sample (Loihi 1 prices)", _command(run))
    ml, k = _load(lif, "metrics.json"), json.loads((lif / "config.json").read_text())["config"]
    row("CUBA LIF (fc 784-256-10)", "spikes; the frame as input current every step",
        f"{_pct(ml.get('quantized_accuracy'))} ({ml.get('test_samples', 0):,})", _test_acc(lif), _parity(lif),
        f"{cl['messages']:,.0f}", cl["synops"], f"integers for target {k['target']}; test float QAT forward "
        f"{_pct(_load(lif, 'test_metrics.json').get('qat_accuracy'))}; {cl['uj']:.2f} uJ/sample (Loihi 1 prices)",
        _command(lif))
    return rows, {"ann": ca, "sdnn": cs, "lif": cl, "selection": sel}


HEADER = ("| network | what is sent | validation acc % (Loihi integers; images) | test acc % float / Loihi integers "
          "(images) | vs integer reference: mismatches | messages per frame | SynOps per frame | x dense ANN | notes | "
          "command |\n|---|---|---|---|---|---|---|---|---|---|")


def provenance(folder: Path) -> str:
    """Seeds, data used, training time and machine load of each run, the selection rule, the machine."""
    import platform
    from importlib import metadata

    sel = json.loads((folder / "selection.json").read_text())
    lines = [f"Selection (validation split only): {sel['rule']}."]
    for name in ("ann", "sdnn", "lif"):
        run = Path(sel[name]["run"])
        cfg, met = json.loads((run / "config.json").read_text())["config"], _load(run, "metrics.json")
        load = met.get("machine_load", met.get("load_average"))
        load = " to ".join(map(str, load)) if isinstance(load, list) else load  # a LIF run: at start and end
        lines.append(f"{name} ({run.name}): seed {cfg['seed']}, 1 run; trained on {met.get('train_samples', 0):,} "
                     f"images (the first {cfg.get('limit') or 'all'} of the training set, validation "
                     f"{cfg['validation']} of them held out), {cfg['epochs']} epochs, "
                     f"{met.get('train_seconds', 0) / 60:.1f} min "
                     f"({met.get('train_cpu_seconds', 0) / 60:.1f} CPU min; 1-min load {load})")
    vers = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "lava-nc", "lava-dl"))
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs; {vers}.")
    return "\n".join(f"- {line}" for line in lines)


def plot(folder: Path, costs: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in (("sdnn", folder / "sdnn"), ("ann", folder / "ann")):
        rows = _load(Path(costs["selection"][name]["run"]), "sweep.json").get("rows", [])
        if rows:
            ax1.scatter([r["synops_per_frame"] for r in rows], [100 * r["accuracy"] for r in rows], s=12, alpha=0.5,
                        label=f"{name.upper()} weights, threshold sweep (validation)")
    dense = costs["ann"]["dense_macs"]
    ax1.axvline(dense, color="k", ls="--", lw=1, label="dense ANN: every MAC every frame")
    ax1.set_xscale("log")
    ax1.set_xlabel("synaptic operations per frame")
    ax1.set_ylabel("accuracy % (validation split)")
    ax1.legend(fontsize=7)
    for key, label in (("ann", "SDNN, no thresholds"), ("sdnn", "SDNN, thresholds + penalty"), ("lif", "CUBA LIF")):
        ax2.plot(range(1, len(costs[key]["per_step"]) + 1), costs[key]["per_step"], marker="o", ms=3, label=label)
    ax2.axhline(dense, color="k", ls="--", lw=1, label="dense ANN")
    ax2.set_yscale("log")
    ax2.set_xlabel("frame (time step)")
    ax2.set_ylabel("synaptic operations (test images, mean)")
    ax2.legend(fontsize=7)
    fig.suptitle("Moving Fashion-MNIST (1 px per step at most, T = 16)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def write_table(folder: Path, doc: Path | None) -> None:
    rows, costs = table_rows(folder)
    table = HEADER + "\n" + "\n".join(rows) + "\n\n" + provenance(folder)
    print(table)
    if doc is None:
        return
    text = doc.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"{doc} must hold one '{BEGIN}' line and one '{END}' line")
    head, rest = text.split(BEGIN, 1)
    doc.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")
    plot(folder, costs, doc.parent / "sdnn_moving.png")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep")
    sw.add_argument("runs", nargs="+", type=Path)
    se = sub.add_parser("select")
    se.add_argument("ann", type=Path)
    se.add_argument("sdnn", nargs="+", type=Path)
    se.add_argument("--lif", nargs="+", type=Path, required=True)
    se.add_argument("--out", type=Path, required=True)
    se.add_argument("--tolerance", type=float, default=0.5)
    tb = sub.add_parser("table")
    tb.add_argument("folder", type=Path)
    tb.add_argument("--write", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "sweep":
        for run in args.runs:
            sweep(run)
    elif args.cmd == "select":
        print(json.dumps(select(args.ann, args.sdnn, args.lif, args.out, args.tolerance), indent=1))
    else:
        write_table(args.folder, args.write)


if __name__ == "__main__":
    main(sys.argv[1:])
