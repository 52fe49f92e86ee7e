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
