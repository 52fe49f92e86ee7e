"""benchmarks/results_table.py --write replaces the generated table of docs/results.md and nothing else."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("results_table", ROOT / "benchmarks" / "results_table.py")
results_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_table)


def test_write_keeps_the_prose_around_the_table(tmp_path):
    doc = tmp_path / "results.md"
    prose_before, prose_after = "# Results\n\nWhy the runs were made.\n\n", "\n\n## Targets\n\nmet.\n"
    doc.write_text(f"{prose_before}{results_table.BEGIN}\n| old | table |\n{results_table.END}{prose_after}")
    results_table.main(["--write", str(doc)])
    text = doc.read_text()
    assert text.startswith(prose_before) and text.endswith(prose_after)
    assert "| old | table |" not in text and results_table.HEADER in text


def test_the_real_document_has_its_markers_and_a_document_without_them_is_refused(tmp_path):
    real = (ROOT / "docs" / "results.md").read_text()
    assert real.count(results_table.BEGIN) == 1 and real.count(results_table.END) == 1
    doc = tmp_path / "plain.md"
    doc.write_text("# Results\n\nprose only\n")
    with pytest.raises(SystemExit):
        results_table.main(["--write", str(doc)])
    assert doc.read_text() == "# Results\n\nprose only\n"


def test_targets_table_row_and_its_own_markers(tmp_path):
    """--table targets: a row reads seed, validation split, readout, the float -> Loihi gap, value mismatches and
    CPU time from the run's files, and --write replaces only that table's block."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    files = {"config.json": {"config": {"method": "bpsrm", "readout": "membrane", "arch": "fc", "hidden": [512],
                                        "time_steps": 8, "epochs": 15, "seed": 3}},
             "metrics.json": {"float_accuracy": 0.9011, "qat_accuracy": 0.9020, "quantized_accuracy": 0.9015,
                              "validation": {"samples": 5000, "of_train_samples": 60000, "quantized_accuracy": 0.9102},
                              "train_seconds": 600, "train_cpu_seconds": 1080, "threads": 2, "load_average": [3.2, 5.9]},
             "parity_lava.json": {"samples": 200, "comparisons": [
                 {"pair": "reference-lava", "backend_accuracy": 0.9, "spike_mismatches": 0,
                  "output_values": {"value_mismatches": 0}},
                 {"pair": "reference-emulator", "backend_accuracy": 0.9, "spike_mismatches": 0,
                  "output_values": {"value_mismatches": 0}}]},
             "parity_emulator.json": {"samples": 10000, "comparisons": [
                 {"pair": "reference-emulator", "backend_accuracy": 0.9015, "spike_mismatches": 0}]},
             "energy.json": {"synops": 4514.2, "energy_j": {"loihi": 3.276e-5}}}
    for name, obj in files.items():
        (run / name).write_text(json.dumps(obj))
    (run / "source_config.txt").write_text("examples/x.toml")
    row = results_table.target_row(run)
    for cell in ("| bpsrm, membrane |", "| 15 | 3 |", "5,000 of 60,000: 91.02", "| +0.05 / -0.04 |",
                 "90.00 (200 s., 0 spike / 0 value mism.)", "90.15 (10000 s., 0 spike mism.)",
                 "10.0 (18.0 CPU min on 2 threads; load 3-6)", "| 4,514 | 32.76 |"):
        assert cell in row, cell
    begin, end = results_table.markers("targets")
    doc = tmp_path / "results.md"
    doc.write_text(f"{results_table.BEGIN}\n| old |\n{results_table.END}\n\n{begin}\n| stale |\n{end}\nafter\n")
    results_table.main(["--write", str(doc), "--table", "targets", str(run)])
    text = doc.read_text()
    assert "| old |" in text and "| stale |" not in text and row in text and text.endswith(f"{end}\nafter\n")


def test_a_validation_run_shows_its_test_accuracies_never_the_splits(tmp_path):
    """A run trained with a validation split scored that split in metrics.json: the targets row and the
    per-method row take the test accuracies from test_metrics.json, and without that file show none."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {
        "method": "bpsrm", "readout": "membrane", "arch": "fc", "hidden": [1024], "time_steps": 8, "epochs": 15,
        "seed": 0, "validation": 5000}}))
    (run / "metrics.json").write_text(json.dumps({
        "float_accuracy": 0.9111, "qat_accuracy": 0.9122, "quantized_accuracy": 0.9133,
        "validation": {"samples": 5000, "of_train_samples": 60000, "quantized_accuracy": 0.9133}}))
    (run / "source_config.txt").write_text("examples/x.toml")
    assert "91.33" in results_table.target_row(run).split("| 0 |", 1)[1].split("|")[0]  # the split's own cell
    row = results_table.target_row(run)
    assert "91.11" not in row and "91.22" not in row and "| - | - | - | - |" in row
    (run / "test_metrics.json").write_text(json.dumps({
        "float_accuracy": 0.9001, "qat_accuracy": 0.9012, "quantized_accuracy": 0.9004}))
    row = results_table.target_row(run)
    assert "| 90.01 | 90.12 | 90.04 | +0.08 / -0.03 |" in row and "sdnn_pipeline.sh examples/x.toml" in row
    wide = results_table.row(run)
    assert "| 90.01 | 90.12 | 90.04 |" in wide and "validation split of 5,000 training images (Loihi 91.33%" in wide
