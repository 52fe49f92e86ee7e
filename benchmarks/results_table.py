"""The per-method results table of docs/results.md, from run folders that benchmarks/fmnist_pipeline.sh made
(sigma-delta runs: benchmarks/sdnn_pipeline.sh, whose test_metrics.json holds their test-set accuracies).

Each row reads only what the commands wrote: config.json and metrics.json (training), parity_lava.json
(Lava and emulator against the quantized reference on 200 test samples), parity_emulator.json (emulator
on the whole test set) and energy.json (SynOps and energy per sample on 1,000 test samples).

Usage: ``python benchmarks/results_table.py runs/lif_fmnist runs/klif_fmnist ...`` prints the table;
``--write docs/results.md`` replaces only the table between the document's ``BEGIN`` / ``END`` marker
lines, so the prose around it is never overwritten (a document without the markers is refused).
``--table targets`` (after ``--write FILE``, if given) makes the targets table instead (its own markers): the
seed, the validation split and its accuracy, the readout, the float -> Loihi gap, Lava / emulator value
mismatches of a membrane readout, and training's CPU minutes and the machine's load beside the wall time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(run: Path, name: str) -> dict:
    path = run / name
    return json.loads(path.read_text()) if path.exists() else {}


def _arch(cfg: dict) -> str:
    if cfg.get("arch") == "conv":
        ch = "-".join(f"{c}c{cfg.get('kernel', 3)}" for c in cfg.get("channels", []))
        return f"conv {ch} p{cfg.get('pool', 2)} fc{'-'.join(map(str, cfg.get('hidden', [])))}"
    return f"fc 784-{'-'.join(map(str, cfg.get('hidden', [])))}-10"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _sigma_delta(cfg: dict, met: dict, lava: dict) -> tuple[dict, list[str]]:
    """A sigma-delta run (benchmarks/sdnn_pipeline.sh): its test-set accuracies (test_metrics.json; metrics.json
    scored the validation split) and notes: the split, netx parity, integer widths, CPU time under load."""
    notes = [f"hyper-parameters on a {100 * cfg['validation']:.0f}% validation split of the training set "
             f"(seed {cfg['seed']}, 1 run)"] if cfg.get("validation") else [f"seed {cfg.get('seed')}, 1 run"]
    netx = next((c for c in lava.get("comparisons", []) if c.get("pair") == "reference-netx"), None)
    if netx:
        notes.append(f"netx on Lava: {netx.get('spike_mismatches')} payload mismatches")
    notes.append(f"weight bits {met.get('weight_bits')}, payload bits {met.get('payload_bits')}")
    if "train_cpu_seconds" in met:
        notes.append(f"{met['train_cpu_seconds'] / 60:.1f} CPU min (load {met.get('machine_load')})")
    return met, notes


def _test_accuracies(run: Path, cfg: dict, met: dict) -> dict:
    """``met`` with the test-set accuracies of a run trained with a validation split (its metrics.json scored the
    split): test_metrics.json's (benchmarks/sdnn_test_metrics.py), None where that file is missing."""
    if not cfg.get("validation"):
        return met
    tested = _load(run, "test_metrics.json")
    return {**met, **{k: tested.get(k) for k in ("float_accuracy", "qat_accuracy", "quantized_accuracy")}}


def _pipeline(cfg: dict) -> str:
    """The script that made the run folder: sigma-delta and validation-split runs also score the test set."""
    return "sdnn_pipeline.sh" if cfg.get("neuron") == "sigma-delta" or cfg.get("validation") else "fmnist_pipeline.sh"


def row(run: Path) -> str:
    cfg, met = _load(run, "config.json"), _load(run, "metrics.json")
    cfg = cfg.get("config", cfg)
    sd_notes, split_notes = [], []
    if cfg.get("neuron") == "sigma-delta":
        tested = _load(run, "test_metrics.json")
        met, sd_notes = _sigma_delta(cfg, {**met, **tested}, _load(run, "parity_lava.json"))
    elif cfg.get("validation"):  # metrics.json scored the held-out split; the test set is in test_metrics.json
        met = _test_accuracies(run, cfg, met)
        val = met.get("validation", {})
        split_notes.append(f"hyper-parameters on a validation split of {val.get('samples', 0):,} training images "
                           f"(Loihi {_pct(val.get('quantized_accuracy'))}%; seed {cfg.get('seed')}, 1 run)")
    if cfg.get("readout") == "membrane":
        split_notes.append("membrane readout (the output integrator's voltage at the last step)")
    lava, emu, en = _load(run, "parity_lava.json"), _load(run, "parity_emulator.json"), _load(run, "energy.json")
    src = (run / "source_config.txt").read_text().strip() if (run / "source_config.txt").exists() else "?"
    lava_cmp = next((c for c in lava.get("comparisons", []) if c.get("pair") == "reference-lava"), {})
    lava_cell = (f"{_pct(lava_cmp.get('backend_accuracy'))} ({lava.get('samples')} s., "
                 f"{lava_cmp.get('spike_mismatches')} mism.)") if lava_cmp else "-"
    emu_cell = f"{_pct(emu.get('backend_accuracy'))} ({emu.get('samples')} s., {emu.get('spike_mismatches')} mism.)" \
        if emu else "-"
    loihi = en.get("energy_j", {}).get("loihi")
    extra = []
    if "keep_fraction" in met or cfg.get("method") == "hnsg":
        extra.append(f"keep {cfg.get('keep_fraction')}, gain {cfg.get('hnsg_gain', 0.4)}, lr {cfg.get('lr')}")
    if "klif_k" in met:
        extra.append(f"k {met['klif_k']}")
        if cfg.get("klif_floor", "all") != "all":
            extra.append(f"floor on {cfg['klif_floor']} layers only")
    if cfg.get("method") == "bpsrm" and cfg.get("tcn_stat_batch"):
        extra.append(f"TCN statistics from {cfg['tcn_stat_batch']} samples per batch, lr {cfg.get('lr')}")
    if cfg.get("augment_flip") or cfg.get("augment_shift"):
        extra.append("training images " + " and ".join(
            (["mirrored"] if cfg.get("augment_flip") else [])
            + ([f"shifted by up to {cfg['augment_shift']} px"] if cfg.get("augment_shift") else [])))
    extra += split_notes + (sd_notes or [f"fire {met.get('fire_intensity', 0):.3f}"])
    method = "sigma-delta" if sd_notes else cfg.get("method")
    synops = en.get("synops", 0)
    if sd_notes:  # a sigma-delta message is a graded payload: NeuroBench counts it as an effective MAC
        synops += en.get("effective_macs", 0)
        extra.append("SynOps: nonzero graded messages (the input's and every layer's) x nonzero fan-out")
    script = _pipeline(cfg)
    return (f"| {method} | {_arch(cfg)}, T={cfg.get('time_steps')}, {cfg.get('encoder')} | "
            f"{cfg.get('epochs')} | {_pct(met.get('float_accuracy'))} | {_pct(met.get('qat_accuracy'))} | "
            f"{_pct(met.get('quantized_accuracy'))} | "
            f"{lava_cell} | {emu_cell} | {met.get('train_seconds', 0) / 60:.1f} | "
            f"{synops:,.0f} | {'-' if loihi is None else f'{loihi * 1e6:.2f}'} | {'; '.join(extra)} | "
            f"`benchmarks/{script} {src} {run}` |")


HEADER = ("| method | network | epochs | float acc %, unquantized | float acc %, QAT forward | Loihi-integer acc % (10k) | Lava acc % (samples, spike "
          "mismatches vs reference) | emulator acc % | train min | SynOps/sample | Loihi uJ/sample | notes | command |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _minutes(met: dict) -> str:
    """Training wall minutes, CPU minutes of the process (all its threads) and the machine's load."""
    wall = f"{met.get('train_seconds', 0) / 60:.1f}"
    if "train_cpu_seconds" not in met:
        return wall
    load = [x for x in met.get("load_average", [met.get("machine_load")]) if x is not None]
    threads = f" on {met['threads']} threads" if met.get("threads") else ""  # sd_loop records no count
    return (f"{wall} ({met['train_cpu_seconds'] / 60:.1f} CPU min{threads}"
            + (f"; load {min(load):.0f}-{max(load):.0f}" if load else "") + ")")


def _checks(parity: dict, pair: str) -> str:
    """``acc (samples s., spike / value mismatches)`` of a parity file's comparison ``pair``."""
    c = next((c for c in parity.get("comparisons", []) if c.get("pair") == pair), None)
    if c is None:
        return "-"
    values = (c.get("output_values") or {}).get("value_mismatches")
    return (f"{_pct(c.get('backend_accuracy'))} ({parity.get('samples')} s., {c.get('spike_mismatches')} spike"
            + ("" if values is None else f" / {values} value") + " mism.)")


def target_row(run: Path) -> str:
    """A row of the targets table (seed, validation split, readout, float -> Loihi gap, CPU time). A run trained
    with a validation split scored that split in metrics.json: its test accuracies come from test_metrics.json
    (benchmarks/sdnn_test_metrics.py), and a row without them says so instead of showing the split's."""
    cfg, met = _load(run, "config.json"), _load(run, "metrics.json")
    cfg = cfg.get("config", cfg)
    val = met.get("validation")
    if val is None and cfg.get("validation") and met.get("scored_on") == "validation split":  # sd_loop's metrics
        val = {"samples": met.get("test_samples", 0), "quantized_accuracy": met.get("quantized_accuracy"),
               "of_train_samples": met.get("train_samples", 0) + met.get("test_samples", 0)}
    met = _test_accuracies(run, cfg, met)
    sd = cfg.get("neuron") == "sigma-delta"
    lava, emu, en = _load(run, "parity_lava.json"), _load(run, "parity_emulator.json"), _load(run, "energy.json")
    src = (run / "source_config.txt").read_text().strip() if (run / "source_config.txt").exists() else "?"
    val_cell = f"{val['samples']:,} of {val['of_train_samples']:,}: {_pct(val['quantized_accuracy'])}" if val else "none"
    gap = [met.get(k) for k in ("qat_accuracy", "float_accuracy", "quantized_accuracy")]
    gap_cell = "-" if None in gap else f"{100 * (gap[0] - gap[2]):+.2f} / {100 * (gap[1] - gap[2]):+.2f}"
    loihi = en.get("energy_j", {}).get("loihi")
    lava_pair = f"{_checks(lava, 'reference-lava')}; emulator {_checks(lava, 'reference-emulator')}"
    synops = en.get("synops", 0) + (en.get("effective_macs", 0) if sd else 0)  # graded messages x fan-out
    script = _pipeline(cfg)
    kind = "sigma-delta, last value" if sd else f"{cfg.get('method')}, {cfg.get('readout', 'spike_count')}"
    return (f"| {kind} | {_arch(cfg)}, T={cfg.get('time_steps')} | "
            f"{cfg.get('epochs')} | {cfg.get('seed')} | {val_cell} | {_pct(met.get('float_accuracy'))} | "
            f"{_pct(met.get('qat_accuracy'))} | {_pct(met.get('quantized_accuracy'))} | {gap_cell} | {lava_pair} | "
            f"{_checks(emu, 'reference-emulator')} | {_minutes(met)} | {synops:,.0f} | "
            f"{'-' if loihi is None else f'{loihi * 1e6:.2f}'} | `benchmarks/{script} {src} {run}` |")


TARGET_HEADER = ("| method, readout | network | epochs | seed | validation split (held out of train: Loihi acc %) | "
                 "float acc %, unquantized | float acc %, QAT forward | Loihi-integer acc % (10k test) | float -> Loihi "
                 "(points, QAT / unquantized) | Lava acc % (samples; mismatches vs reference); emulator on the same | "
                 "emulator acc % (10k; mismatches) | train wall min (CPU min; load) | SynOps/sample | Loihi uJ/sample | "
                 "command |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
TABLES = {None: (HEADER, row), "targets": (TARGET_HEADER, target_row)}  # --table NAME: its markers and rows


def markers(name: str | None = None) -> tuple[str, str]:
    """The BEGIN / END marker lines of the table ``name`` (None: the per-method table)."""
    tag = "" if name is None else f" {name}"
    return (f"<!-- results_table.py: begin{tag} -->",
            f"<!-- results_table.py: end{tag} (generated; edit the runs, not this table) -->")


BEGIN, END = markers()


def replace_table(doc: str, table: str, name: str | None = None) -> str:
    """``doc`` with the lines between the BEGIN and END markers of table ``name`` replaced by ``table``."""
    begin, end = markers(name)
    if doc.count(begin) != 1 or doc.count(end) != 1 or doc.index(begin) > doc.index(end):
        raise SystemExit(f"the document must hold one '{begin}' line and, after it, one '{end}' line")
    head, rest = doc.split(begin, 1)
    return f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}"


def main(argv: list[str]) -> None:
    write = name = None
    if argv[:1] == ["--write"]:
        write, argv = Path(argv[1]), argv[2:]
    if argv[:1] == ["--table"]:
        name, argv = argv[1], argv[2:]
    if name not in TABLES:
        raise SystemExit(f"--table must be one of {', '.join(t for t in TABLES if t)}, got {name!r}")
    header, make_row = TABLES[name]
    table = "\n".join([header, *(make_row(Path(arg)) for arg in argv)])
    if write is None:
        print(table)
        return
    text = replace_table(write.read_text(), table, name)
    tmp = write.with_name(f".{write.name}.tmp")
    tmp.write_text(text)
    tmp.replace(write)


if __name__ == "__main__":
    main(sys.argv[1:])
