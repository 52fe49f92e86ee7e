"""What the commands print when they finish (`spikeport train`, `import`, fine-tuning): (label, value) rows of
their result files, for the CLI's summary table. The report's own tables are in :mod:`spikeport.report.markdown`.
"""
from __future__ import annotations


def train_rows(metrics: dict) -> list[tuple[str, str]]:
    """What `spikeport train` prints of its metrics.json."""
    first = metrics["first_step_seconds"]
    chip = "Xylo" if metrics.get("chip") == "xylo-audio2" else "Loihi"
    return [("float accuracy", f"{metrics['float_accuracy']:.2%}"),
            (f"quantized ({chip}) accuracy", f"{metrics['quantized_accuracy']:.2%}"),
            ("train time", f"{metrics['train_seconds']:.1f} s"),
            ("training path", metrics["train_path"] + ("" if first is None else f" (first step {first} s)"))]

def import_rows(res: dict) -> list[tuple[str, str]]:
    """What `spikeport import` prints of a NIR graph's import.json ``res``."""
    rows = [("producer", res["producer"]), ("dt", f"{res['dt']:g} s"), ("network", res["network"]),
            ("reset", f"{res['reset']}, timing {res['reset_timing']['applied']}"), ("readout", res["readout"]),
            ("approximations", str(len(res["approximations"])) + ("" if res["exact"] else " (see import.json)"))]
    for layer in res["layers"]:
        rows.append((f"{layer['layer']} weight error / clipped", f"{layer['weight_rel_error']:.2%} / "
                     f"{layer['clipped_fraction']:.2%}" + (" (16-bit)" if layer.get("weight_bits") == 16 else "")))
    if "agreement" in res:
        rows.append(("float reference vs integer predictions", f"{res['agreement']['prediction_agreement']:.2%}"))
    return rows

def netx_import_rows(res: dict) -> list[tuple[str, str]]:
    """What `spikeport import FILE.net` prints."""
    kinds = " -> ".join(f"{r['kind']}{'(' + r['encoder'] + ')' if r.get('encoder') else ''}"
                        for r in res.get("layers", []))
    rows = [("producer", res["producer"]), ("network", res["network"]), ("blocks", kinds),
            ("time steps", str(res["time_steps"])), ("exact", "yes: the netx file's integers as they are")]
    if res.get("regression"):
        rows.append(("output", "values per step (regression)"))
    if res.get("model_nir_note"):
        rows.append(("model.nir", f"not written: {res['model_nir_note']}"))
    for note in res.get("ignored_by_netx", []):
        rows.append(("note", note))
    return rows

def finetune_result_rows(res: dict) -> list[tuple[str, str]]:
    """What fine-tuning prints of its result (importer.finetune.finetune_run): settings, before -> after."""
    rows = [("target", res["target"]), ("measured on", res["measured_on"]),
            ("samples", f"{res['train_samples']} trained, {res['heldout_samples']} held out")]
    for key, label in (("prediction_agreement", "agreement with the producer"),
                       ("integer_accuracy", "integer accuracy"), ("producer_accuracy", "producer accuracy")):
        if key in res["after"]:
            rows.append((label, f"{res['before'][key]:.2%} -> {res['after'][key]:.2%}"))
    return rows
