"""benchmarks/claims.py, the registry behind `make verify` (issue 27): every registered figure is found in its
doc, a copy of the doc with that figure edited by 10 % is flagged as stale while the unedited copy passes,
and the cheap group (the energy comparisons, ~2 s) is regenerated for real: claims.py exits 0 on the docs
and 1 on a copy of docs/energy_validation.md whose figure was edited by 10 %."""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys

import pytest

from tests.conftest import REPO


def _claims():
    if "claims" not in sys.modules:
        spec = importlib.util.spec_from_file_location("claims", REPO / "benchmarks" / "claims.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["claims"] = module
        spec.loader.exec_module(module)
    return sys.modules["claims"]


claims = _claims()


def edit_by_10_percent(claim, text: str) -> str:
    """``text`` (whitespace runs read as one space, as claims.py reads it) with every occurrence of the
    claim's figure raised by 10 %, or by twice its tolerance where that is more (a small figure with an
    absolute tolerance: a 10 % edit of 10.00 % within 1.5 points is not stale), printed like the original
    (decimals, thousands commas); a whole number that the raise does not change (0, 1..4) is raised by one."""
    flat = re.sub(r"\s+", " ", text)

    def bump(m: re.Match) -> str:
        old = m.group(1)
        value = float(old.replace(",", ""))
        decimals = len(old.split(".")[1]) if "." in old else 0
        new = max(value * 1.1, value + 2 * claim.allowed(value)) if value else 1.0
        if decimals == 0 and round(new) == value:
            new = value + 1
        out = f"{new:,.{decimals}f}" if "," in old else f"{new:.{decimals}f}"
        return m.group(0)[:m.start(1) - m.start(0)] + out + m.group(0)[m.end(1) - m.start(0):]

    return re.sub(claim.pattern, bump, flat)


def test_registry_is_well_formed():
    names = [c.name for c in claims.CLAIMS]
    assert len(names) == len(set(names))
    assert {c.group for c in claims.CLAIMS} <= set(claims.GROUPS)
    assert all((REPO / c.doc).is_file() for c in claims.CLAIMS)
    assert all(re.compile(c.pattern).groups >= 1 for c in claims.CLAIMS)


@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.name)
def test_a_10_percent_edit_of_each_figure_is_flagged(claim):
    text = (REPO / claim.doc).read_text()
    found = claims.printed(claim, text)
    assert len(found) == claim.count, f"{claim.name}: {claim.doc} prints it {len(found)} time(s)"
    assert claims.check(claim, text, found[0])[0]  # the doc's own figure, as if regenerated exactly: passes
    edited = edit_by_10_percent(claim, text)
    assert claims.printed(claim, edited) != found
    ok, line = claims.check(claim, edited, found[0])
    assert not ok and line.startswith("STALE"), line


def test_a_figure_gone_from_its_doc_is_missing_and_a_failed_script_unreproducible():
    claim = claims.CLAIMS[0]
    assert claims.check(claim, "no figure here", 1.0)[1].startswith("MISSING")
    text = (REPO / claim.doc).read_text()
    assert claims.check(claim, text, None, "RuntimeError: boom")[1].startswith("UNREPRODUCIBLE")


def test_claims_py_passes_on_the_docs_and_fails_on_a_copy_edited_by_10_percent(tmp_path, capsys):
    """The energy group regenerated for real (energy_validation.py's counting), against the docs as they are
    and against a copy of docs/energy_validation.md with one figure (the LSNN's neurocore ratio) raised 10 %."""
    saved = tmp_path / "values.json"
    assert claims.main(["--only", "energy", "--save", str(saved)]) == 0
    copy = tmp_path / "checkout"
    (copy / "docs").mkdir(parents=True)
    doc = REPO / "docs" / "energy_validation.md"
    claim = next(c for c in claims.CLAIMS if c.name == "energy.lsnn.cores")
    (copy / "docs" / doc.name).write_text(edit_by_10_percent(claim, doc.read_text()))
    capsys.readouterr()
    assert claims.main(["--only", "energy", "--values", str(saved), "--root", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "STALE  energy.lsnn.cores" in out and out.count("STALE") == 1
    shutil.copy(doc, copy / "docs" / doc.name)
    assert claims.main(["--only", "energy", "--values", str(saved), "--root", str(copy)]) == 0
