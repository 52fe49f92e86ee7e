"""report.md / report.html from real run folders, the spike sample parity saves, and energy.json's
per-layer and per-step energies (hand-computed on the 3-4-2 net of test_measure)."""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spikeport import pipeline as workflow
from spikeport.deploy import emulator
from spikeport.files import runfolder
from spikeport.measure import count_ops, load_profiles
from spikeport.nirfmt.load import load_nir
from spikeport.pipeline import energy_stage
from spikeport.report import html as html_report
from spikeport.report import markdown
from tests.conftest import cli
from tests.test_measure import two_layer

T, SAMPLES = 6, 30
VOID = {"meta", "img", "br", "hr", "input", "link", "col", "wbr", "source", "area", "base", "embed", "track"}
EVIL = "<i>odd&run$\\bad{$"  # HTML and math-text delimiters; a folder name cannot hold "/"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/ with a real run (trained briefly, parity on the emulator, energy) and three siblings:
    a second run, one whose name and network carry HTML, one with a corrupt energy.json."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    parent = tmp_path_factory.mktemp("runs")
    run = parent / "small"
    train(TrainConfig(data="digits", epochs=1, hidden=[16], time_steps=T, limit=200), run)
    export_run(run)
    workflow.parity(run, backend="emulator", samples=SAMPLES)
    workflow.energy(run, samples=SAMPLES)
    for name, acc, scale, network in (("other", 0.5, 3.0, "64-32-10"), (EVIL, 0.7, 0.5, "<script>x</script>")):
        sib = parent / name
        sib.mkdir()
        p = json.loads((run / "parity.json").read_text())
        e = json.loads((run / "energy.json").read_text())
        p["network"], p["comparisons"][0]["backend_accuracy"] = network, acc
        e["energy_j"] = {k: v * scale for k, v in e["energy_j"].items()}
        (sib / "parity.json").write_text(json.dumps(p))
        (sib / "energy.json").write_text(json.dumps(e))
    (parent / "broken").mkdir()
    shutil.copy(run / "parity.json", parent / "broken" / "parity.json")
    (parent / "broken" / "energy.json").write_text("{not json")
    return parent


class Checker(HTMLParser):
    """Checks tag nesting and collects section ids, image sources and external references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.sections, self.images, self.external = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith(("data:", "#")):
                self.external.append(attrs[key])
        if tag in ("script", "link", "iframe", "object"):
            self.external.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}> at {self.getpos()}")


def parse(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors and checker.stack == [], (checker.errors, checker.stack)
    return checker


def test_parity_saves_one_sample_per_layer_and_side(runs):
    run = runs / "small"
    sample = html_report.load_spike_sample(run / runfolder.SPIKE_SAMPLE)
    net = load_nir(run / "model.nir")
    assert sample["layers"] == [p.name for p in net.populations]
    assert sample["sides"] == ["reference", "emulator"] and sample["sample"] == 0
    x_int, y, _ = workflow.test_inputs(net, "digits", None, 1)
    direct = emulator.run(net, x_int).spikes
    assert sample["label"] == int(y[0])
    for saved, ref, spikes in zip(sample["spikes"]["emulator"], sample["spikes"]["reference"], direct):
        assert saved.dtype == bool and saved.shape == (T, spikes.shape[2])
        np.testing.assert_array_equal(saved, spikes[:, 0] != 0)
        np.testing.assert_array_equal(ref, saved)  # parity passed: the reference spikes are the same


def test_energy_json_has_per_layer_and_per_step_values(runs):
    e = json.loads((runs / "small" / "energy.json").read_text())
    layers = e["counts"]["layers"]
    for c in layers:
        assert {"synops", "effective_macs", "dense_macs", "neuron_updates_active", "neuron_updates_inactive",
                "spikes_out", "firing_rate", "activation_sparsity"} <= set(c)
        assert all(len(v) == T for v in c["per_step"].values())
    for name, total in e["energy_j"].items():
        assert sum(e["energy_j_per_layer"][name].values()) == pytest.approx(total, rel=1e-9)
    assert set(e["energy_j_per_step"]) == {"loihi", "loihi-kerasspiking", "truenorth", "spinnaker", "spinnaker2"}
    for name, steps in e["energy_j_per_step"].items():
        assert len(steps) == T and sum(steps) == pytest.approx(e["energy_j"][name], rel=1e-9)


def test_loihi_energy_by_layer_and_step_by_hand():
    """The 3-4-2 net of test_measure (T=3, B=2), priced with Davies et al. 2018's figures."""
    split = energy_stage._energy_split(count_ops(two_layer()), load_profiles(), ["loihi"])
    # fc2: 3.5 synops, 3 active + 3 inactive updates, 2 spikes per sample
    assert split["energy_j_per_layer"]["loihi"]["fc2"] == pytest.approx((3.5 * 23.6 + 3 * 81 + 3 * 52 + 2 * 1.7) * 1e-12)
    # step 2: 1 synop, 1.5 of 6 neurons active, 0.5 spikes per sample
    assert split["energy_j_per_step"]["loihi"][2] == pytest.approx((1 * 23.6 + 1.5 * 81 + 4.5 * 52 + 0.5 * 1.7) * 1e-12)


def test_html_has_every_section_valid_markup_and_decodable_images(runs):
    page = html_report.write(runs / "small").read_text()
    checker = parse(page)
    assert checker.sections == list(html_report.SECTIONS)
    assert not checker.external, checker.external
    assert len(checker.images) == 6  # raster, operations, activity, energy by profile, by layer, runs
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        img.load()
        assert img.format == "PNG" and img.width > 500 and img.height > 150
        assert len(img.getcolors(1 << 20)) > 8  # a drawing, not a blank canvas
    assert "Loihi 2 has no public per-operation energy figures" in page
    assert "compute-only" in page and "with memory access" in page
    assert "class=\"missing\"" not in page
    for col in ("SynOps", "dense ANN MACs", "updates active", "updates inactive", "spikes routed", "firing rate",
                "input sparsity"):
        assert f"<th>{col}</th>" in page


def test_html_escapes_text_from_files_and_lists_bad_runs(runs):
    page = html_report.render(runs / "small")
    parse(page)
    assert "<script" not in page and "<i>odd" not in page
    assert "&lt;i&gt;odd&amp;run" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "skipped broken" in page
    runs_table = page.split('id="runs"')[1].split("</section>")[0]
    assert runs_table.count("<tr>") == 1 + 3  # header + small, other, the HTML-named run


def test_markdown_has_the_sources_table_and_statements(runs):
    text = markdown.write(runs / "small").read_text()
    assert "## Sources of the prices" in text
    assert "| profile | price | value | source | year | quality | note |" in text
    assert "| loihi | synop | 23.6 pJ per op | Davies et al., Loihi" in text
    assert "| 2018 | pre-silicon estimate |" in text
    assert markdown.LOIHI2_STATEMENT in text and markdown.ANN_STATEMENT in text
    for title in ("## Operations per layer", "## Energy per layer", "## Loihi 1 mapping",
                  "## Accuracy vs energy across runs"):
        assert title in text
    assert "<i>" not in text and "&lt;i&gt;odd&amp;run" in text


def test_missing_or_unsafe_inputs_are_reported_in_the_page(runs, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    page = html_report.render(bare)
    checker = parse(page)
    assert checker.sections == list(html_report.SECTIONS) and not checker.images
    assert "spikeport parity" in page and "spikeport energy" in page
    run = tmp_path / "pickled"
    shutil.copytree(runs / "small", run)
    with open(run / runfolder.SPIKE_SAMPLE, "wb") as fh:  # an object array needs pickle: refused
        np.savez(fh, layers=np.array([{"a": 1}], dtype=object), sides=np.array(["reference", "lava"]))
    raster = html_report.render(run).split('id="raster"')[1].split("</section>")[0]
    assert "not a readable spike sample" in raster and "<img" not in raster


def test_cli_report_and_energy_table(runs, tmp_path):
    run = tmp_path / "small"
    shutil.copytree(runs / "small", run)
    proc = cli("report", str(run), "--compare", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    proc = cli("energy", str(run), "--samples", "10", "--profile", "loihi", "--profile", "ann-fp32-45nm-mem")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(ln) for ln in lines if not ln.startswith("wrote")) <= 80  # fits an 80-column terminal
    row = next(ln for ln in lines if ln.strip().startswith("ann-fp32-45nm-mem"))
    assert "ANN + weight reads" in row and " nJ" in row
    assert any(ln.strip().startswith("lif0") for ln in lines) and "Loihi 2 has no public" in proc.stdout


@pytest.mark.slow
def test_page_renders_in_headless_chromium(runs, tmp_path):
    """Screenshot the page in Debian's chromium (apt-get install chromium)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    page = html_report.write(runs / "small")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,3000",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 3000)
    pixels = np.asarray(img)
    ink = (pixels.min(axis=2) < 200).mean()
    assert ink > 0.05, f"only {ink:.1%} of the screenshot is drawn"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, tables and figures, not a blank page


def test_html_shows_validation_of_every_priced_profile_and_the_loihi2_map(runs):
    e = json.loads((runs / "small" / "energy.json").read_text())
    assert set(e["validation"]) == set(e["energy_j"])
    assert e["loihi2_mapping"]["estimate"] is True and e["loihi2_mapping"]["total_cores"] >= len(e["counts"]["layers"])
    assert e["energy_j_with_overhead"]["loihi"] > e["energy_j"]["loihi"]  # labelled terms beside per-op
    page = html_report.render(runs / "small")
    parse(page)
    section = page.split('id="validation"')[1].split("</section>")[0]
    body_rows = section.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(body_rows) == len(e["energy_j"])
    for name in e["energy_j"]:
        row = next(r for r in body_rows if r.startswith(f"<td>{name}</td>"))
        cells = row.split("</td>")
        assert e["validation"][name]["per_op"]["label"] in cells[2]  # beside the per-op figure, its own status
        system = e["validation"][name]["system"]
        assert (system["label"] if system else "<td>-") in cells[4]
    loihi = next(r for r in body_rows if r.startswith("<td>loihi</td>")).split("</td>")
    assert "not reproduced" in loihi[2] and "calibrated" not in loihi[2]  # issue 27: not "calibrated" there
    assert "calibrated (fitted" in loihi[4] and "<td>not validated (no comparison)</td>" in section
    mapping = page.split('id="mapping"')[1].split("</section>")[0]
    assert "Loihi 2 (estimate)" in mapping and "publishes no per-core" in mapping
    for layer in e["loihi2_mapping"]["layers"]:
        assert f"<td>{layer['binding']}</td>" in mapping
    text = markdown.render(runs / "small")
    assert "## Validation of the energy profiles" in text and "## Loihi 2 mapping (estimate)" in text

