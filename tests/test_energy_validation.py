"""benchmarks/energy_validation.py against hand arithmetic; profiles.toml's validation entries and
docs/energy_validation.md against the script; the labelled overhead terms and the profile schema.

Expected values are worked out by hand in the comments from the figures of Blouw et al. 2019
(Table 1), the NxSDK readings printed in Intel's notebooks and the prices written in profiles.toml,
not from the script's own formulas.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from spikeport.errors import SpikeportError
from spikeport.measure import count_ops, estimate_energy, load_profiles
from tests.conftest import cli
from tests.test_measure import two_layer

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("energy_validation", ROOT / "benchmarks" / "energy_validation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _script()


@pytest.fixture(scope="module")
def rows(script):
    return script.blouw_rows()


def test_cpu_row_by_hand(rows):
    """Blouw et al. 2019's keyword spotter as an ANN on the 'cpu' profile (8.6 nJ per MAC and per neuron).

    MACs: 390*256 + 256*256 + 256*29 = 99,840 + 65,536 + 7,424 = 172,800; activations 256 + 256 + 29
    = 541; (172,800 + 541) * 8.6e-9 J = 173,341 * 8.6e-9 = 1.4907326e-3 J.
    Measured (Table 1, CPU): 11.47 W dynamic / 1813.63 inferences/s = 6.324333e-3 J.
    Ratio 1.4907326e-3 / 6.324333e-3 = 0.2357138.
    """
    cpu = next(r for r in rows if r["profile"] == "cpu")
    assert cpu["estimate_j"] == pytest.approx(1.4907326e-3, rel=1e-9)
    assert cpu["measured_j"] == pytest.approx(6.324333e-3, rel=1e-6)
    assert cpu["ratio"] == pytest.approx(0.2357138, rel=1e-6)
    assert not cpu["within_2x"]


def test_loihi_rows_by_hand(rows):
    """Loihi, T = 10, every input channel and neuron firing once in the 10 steps (rate 0.1).

    SynOps: 390 input events * 256 fan-out + 256 layer-1 spikes * 256 = 99,840 + 65,536 = 165,376;
    * 23.6 pJ = 3.9028736 uJ. Neuron updates: 512 neurons * 10 steps, all active (every step brings
    39 input events to layer 1 and >= 25 spikes to layer 2, over dense weights): 5120 * 81 pJ =
    0.41472 uJ. Spikes: 512 * 1.7 pJ = 0.8704 nJ. Per-op total 3.9028736 + 0.41472 + 0.0008704 =
    4.318464 uJ. Measured (Table 1, Loihi): 0.081 W / 296 per s = 273.6486 uJ; ratio 0.0157811.
    Host term: 0.070 W * 10 steps / 2960 steps per s = 236.4865 uJ; with it 240.8050 uJ, ratio 0.879979.
    Remainder: (0.081 - 0.070) W / 296 per s = 37.16216 uJ; per-op / remainder = 0.116206.
    """
    per_op, calibrated, remainder = (r for r in rows if r["profile"] == "loihi")
    assert per_op["estimate_j"] == pytest.approx(4.318464e-6, rel=1e-9)
    assert per_op["ratio"] == pytest.approx(0.0157811, rel=1e-5) and not per_op["within_2x"]
    assert calibrated["estimate_j"] == pytest.approx(240.8050e-6, rel=1e-6)
    assert calibrated["ratio"] == pytest.approx(0.879979, rel=1e-5) and calibrated["within_2x"]
    assert "CALIBRATED" in calibrated["what"]
    assert remainder["measured_j"] == pytest.approx(37.16216e-6, rel=1e-6)
    assert remainder["ratio"] == pytest.approx(0.116206, rel=1e-5)


def test_profile_evidence_rows_are_the_scripts(script):
    """Each profile's [[validation.rows]] in profiles.toml are the script's comparisons, row for row."""
    profiles = load_profiles()
    expected = script.evidence_rows()
    for name, rows in expected.items():
        got = profiles[name].validation["rows"]
        assert [(r["estimate"], r["measurement"], r["fitted"]) for r in got] == \
            [(r["estimate"], r["measurement"], r["fitted"]) for r in rows], name
        for g, r in zip(got, rows):
            assert g["measured_j"] == pytest.approx(r["measured_j"], rel=1e-3), (name, r["measurement"])
            assert g["estimate_j"] == pytest.approx(r["estimate_j"], rel=1e-3), (name, r["measurement"])
    assert {n for n, p in profiles.items() if p.validation and p.validation["rows"]} == set(expected)
    assert profiles["spinnaker2"].validation["status"] == "not validated"


def test_each_estimate_has_the_status_its_rows_give():
    """Loihi per-op: Blouw 0.0158x, NxSDK 2.09x / 1.21x / 0.152x, LSNN cores 2.39x, remainder 0.116x: one of six
    within 2x, so not reproduced (it was shown "calibrated" beside this figure before). System: 0.912x on the
    Blouw measurement its two terms come from (fitted), 1.16x braille, 3.96x LSNN: calibrated."""
    e = estimate_energy(count_ops(two_layer()))
    loihi = e["validation"]["loihi"]
    assert loihi["status"] == "calibrated"
    assert loihi["per_op"] == {"status": "not reproduced", "label": "not reproduced (1 of 6 within 2x)"}
    assert loihi["system"] == {"status": "calibrated", "label": "calibrated (fitted 0.912x; 1 of 2 others within 2x)"}
    assert e["validation"]["loihi-kerasspiking"]["system"] is None  # no overhead terms, no system estimate
    assert e["validation"]["cpu"]["per_op"]["status"] == "not reproduced"
    assert e["validation"]["truenorth"]["per_op"]["status"] == "not validated"
    assert set(e["columns"]) == {"energy_j", "energy_j_with_overhead"}


def test_braille_row_by_hand(script):
    """Intel's braille net on Loihi 1 (48 -> 450 recurrent -> 28, 270 ticks), every channel at rate 0.1.

    Measured (notebook cell 11): 73.84686164529916 mW x 6.640671060008044 us x 270 ticks
    = 490.3928 nJ per tick x 270 = 132.40603 uJ, the 132.40603359009617 uJ the notebook prints.
    Pattern: period 10, so each of the 48 inputs and 478 neurons fires 27 times in 270 ticks.
    SynOps: input 48 * 27 = 1,296 events * 450 = 583,200; recurrent: 450 * 27 = 12,150 spikes, less the
    45 of the last tick (neurons i = 9, 19, ... fire at t = 269: (i + 269 + 1) % 10 == 0), = 12,105
    * 450 = 5,447,250; readout 12,150 * 28 = 340,200. Total 6,370,650 * 23.6 pJ = 150.34734 uJ.
    Neuron updates: (450 + 28) * 270 = 129,060, all active (>= 4 inputs fire every tick, dense weights)
    * 81 pJ = 10.45386 uJ. Spikes (12,150 + 28 * 27 = 12,906) * 1.7 pJ = 0.0219402 uJ.
    Per-op 150.34734 + 10.45386 + 0.0219402 = 160.8231402 uJ; / 132.40603 = 1.214621 (within 2x).
    Blouw's host term: 0.070 W * 270 * 6.640671060008044 us = 125.50868 uJ; with it 286.33182 uJ,
    ratio 2.162529 (not within 2x).
    """
    assert script.nxsdk_measured_j("braille") == pytest.approx(132.40603359009617e-6, rel=1e-12)
    rows = [r for r in script.nxsdk_rows() if r["measurement"].startswith("braille")]
    per_op, hosted, keras = rows
    assert per_op["profile"] == "loihi" and per_op["estimate_j"] == pytest.approx(160.8231402e-6, rel=1e-9)
    assert per_op["ratio"] == pytest.approx(1.214621, rel=1e-6) and per_op["within_2x"]
    assert hosted["estimate_j"] == pytest.approx(286.33182e-6, rel=1e-6)
    assert hosted["ratio"] == pytest.approx(2.162529, rel=1e-6) and not hosted["within_2x"]
    assert keras["profile"] == "loihi-kerasspiking"


def test_lsnn_sparse_row_by_hand(script):
    """Intel's sMNIST LSNN (80 -> 240 recurrent -> 10, 840 ticks) with the tutorial's connection densities and the
    adaptive neurons' threshold compartments, every channel at rate 0.1 (period 10: each fires 84 times).

    Weights kept: round(0.222 * 19,200) = 4,262 in; round(0.183 * 57,600) = 10,541 recurrent; round(0.352 * 2,400)
    = 845 out. SynOps: in 84 * 4,262 = 358,008; recurrent 84 * 10,541 = 885,444 less F, the fan-out of the 24
    neurons firing at the last tick (i % 10 == 0: (i + 839 + 1) % 10 == 0), read from the mask; out 84 * 845 =
    70,980; threshold compartments: one per spike of neurons 140..239, 100 * 84 = 8,400. Neuron updates:
    (240 + 10 + 100) * 840 = 294,000; inactive are the aux compartments on the 840 - 84 ticks their neuron is
    silent (100 * 756 = 75,600) and the recurrent neuron-ticks reached by no kept weight and not spiking (computed
    below from the masks); the 10 outputs are all active. Spikes 240 * 84 + 10 * 84 = 21,000.
    Energy: SynOps * 23.6 pJ + active * 81 pJ + inactive * 52 pJ + spikes * 1.7 pJ; measured 346.5424 uJ
    (neurocores 22.14558 uJ). With the masks of seed 19: F = 1,096, inactive recurrent 119, so SynOps 1,321,736
    * 23.6 pJ = 31.1929696 uJ, active 218,281 * 81 pJ = 17.680761 uJ, inactive 75,719 * 52 pJ = 3.937388 uJ,
    spikes 0.0357 uJ: 52.8468186 uJ, ratio 0.152497 (total) and 2.38634 (neurocores), neither within 2x.
    """
    import numpy as np

    rng = np.random.default_rng(script.MASK_SEED)
    m_in, m_rec = script.mask((240, 80), 0.222, rng), script.mask((240, 240), 0.183, rng)
    assert (m_in.sum(), m_rec.sum(), script.mask((10, 240), 0.352, rng).sum()) == (4262, 10541, 845)
    fan_out_last = int(m_rec[:, ::10].sum())
    t = np.arange(840)[:, None]
    fired_in, fired_prev = (np.arange(80) + t) % 10 == 0, (np.arange(240) + t) % 10 == 0  # prev: (j + t-1 + 1)
    fired_prev[0] = False
    spiking = (np.arange(240) + t + 1) % 10 == 0
    reached = (fired_in.astype(int) @ m_in.T > 0) | (fired_prev.astype(int) @ m_rec.T > 0) | spiking
    inactive_rec = int((~reached).sum())
    assert (fan_out_last, inactive_rec) == (1096, 119)

    synops = 358_008 + 885_444 - fan_out_last + 70_980 + 8_400
    inactive = 75_600 + inactive_rec
    per_op = synops * 23.6e-12 + (294_000 - inactive) * 81e-12 + inactive * 52e-12 + 21_000 * 1.7e-12
    assert per_op == pytest.approx(52.8468186e-6, rel=1e-9)
    per_op_row, hosted, keras, core = [r for r in script.nxsdk_rows() if r["measurement"].startswith("sMNIST")]
    assert per_op_row["estimate_j"] == pytest.approx(per_op, rel=1e-9)
    assert per_op_row["ratio"] == pytest.approx(0.152497, rel=1e-5) and not per_op_row["within_2x"]
    assert core["ratio"] == pytest.approx(2.38634, rel=1e-5) and not core["within_2x"]
    assert script.nxsdk_estimate("lsnn")["synops"] == synops == 1_321_736


def test_ntidigits_measurement_is_the_printed_one(script):
    """10.892893181009958 mW x 17.6250417494265 us x 3000 ticks = 575.96309 uJ, as the notebook prints."""
    assert script.nxsdk_measured_j("ntidigits") == pytest.approx(575.9630912620312e-6, rel=1e-12)


def test_lsnn_measurements_add_up_to_the_printed_total(script):
    """sMNIST LSNN notebook, cell In [8]: 840 ticks x 16.649476190477372 us = 13,985.56 us per inference.
    Dynamic 24.778585421177354 mW -> 346.5424 uJ; static 1.1553919470152128 mW -> 16.1588 uJ; their sum
    362.7012 uJ is the 0.362701196521525 mJ the notebook prints. Neurocores' dynamic 1.5834605924254124 mW
    -> 22.1456 uJ."""
    dynamic, core = script.nxsdk_measured_j("lsnn"), script.nxsdk_measured_j("lsnn", "core_dynamic_mw")
    assert dynamic == pytest.approx(346.5424e-6, rel=1e-6) and core == pytest.approx(22.1456e-6, rel=1e-5)
    static = 1.1553919470152128e-3 * 13985.560000000993e-6
    assert dynamic + static == pytest.approx(0.362701196521525e-3, rel=1e-9)


def test_profile_summaries_quote_every_row(script):
    """The one-line summaries quote each comparison's ratio as the script computes it."""
    profiles = load_profiles()
    for name, rows in script.evidence_rows().items():
        summary = profiles[name].validation["summary"]
        for r in rows:
            assert f"{r['estimate_j'] / r['measured_j']:.3g}x" in summary, (name, r["measurement"], summary)


def test_doc_tables_are_current(script):
    doc = (ROOT / "docs" / "energy_validation.md").read_text()
    generated = doc.split(script.BEGIN, 1)[1].split(script.END, 1)[0].strip()
    assert generated == script.generated().strip()


def test_write_doc_replaces_only_the_marked_part(script, tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(f"head\n{script.BEGIN}\nold\n{script.END}\ntail\n")
    script.write_doc("new table", path)
    assert path.read_text() == f"head\n{script.BEGIN}\nnew table\n{script.END}\ntail\n"


def test_overhead_terms_are_labelled_beside_the_per_op_figure():
    """3-4-2 net of test_measure (T = 3): Loihi's board terms are W x 3 steps / 2960 steps per s."""
    counts = count_ops(two_layer())
    e = estimate_energy(counts)
    seconds = 3 / 2960
    assert e["overhead_j"]["loihi"] == pytest.approx({"static_power": 0.029 * seconds, "host_power": 0.070 * seconds})
    assert e["energy_j_with_overhead"]["loihi"] == pytest.approx(e["energy_j"]["loihi"] + 0.099 * seconds)
    assert "2960 steps/s" in e["overhead_basis"]["loihi"] and "Blouw" in e["overhead_basis"]["loihi"]
    assert sum(e["breakdown"]["loihi"].values()) == pytest.approx(e["energy_j"]["loihi"])  # per-op kept apart
    assert set(e["overhead_j"]) == {"loihi"}
    assert set(e["validation"]) == set(e["energy_j"])
    assert e["validation"]["truenorth"]["status"] == "not validated"


def test_step_energy_per_core_needs_cores(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text('[profiles.chip]\nkind = "snn"\n[profiles.chip.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
                    '[profiles.chip.overhead]\nstep_rate_hz = 1000\nstep_rate_source = "ours"\n'
                    '[profiles.chip.overhead.step_energy_per_core]\nvalue_j = 2e-9\nsource = "lab"\n')
    profiles = load_profiles(path)
    counts = count_ops(two_layer())  # T = 3, 9 synops per sample
    with_cores = estimate_energy(counts, profiles, ["chip"], active_cores=4)
    assert with_cores["overhead_j"]["chip"] == {"step_energy_per_core": pytest.approx(3 * 4 * 2e-9)}
    without = estimate_energy(counts, profiles, ["chip"])
    assert without["overhead_j"]["chip"] == {} and "left out" in without["overhead_basis"]["chip"]
    assert without["energy_j_with_overhead"]["chip"] == pytest.approx(9e-12)


@pytest.mark.parametrize("body, key", [
    ('kind = "snn"\ncolour = "red"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n', "profiles.x.colour"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\nyear = "2018"\n',
     "profiles.x.prices.synop.year"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
     '[profiles.x.overhead]\nstep_rate_hz = 0\nstep_rate_source = "s"\n', "profiles.x.overhead.step_rate_hz"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
     '[profiles.x.overhead]\nstep_rate_hz = 10\n', "profiles.x.overhead.step_rate_source"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
     '[profiles.x.validation]\nstatus = "great"\nsummary = "s"\n', "profiles.x.validation.status"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
     '[profiles.x.validation]\nstatus = "validated"\nratio = 1.0\nsummary = "s"\n', "profiles.x.validation.ratio"),
    ('kind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'
     '[profiles.x.weight_memory]\nweight_bits = 8\n', "profiles.x.weight_memory"),
    ('kind = "ann"\n[profiles.x.prices.mac]\nvalue_j = 1e-12\nsource = "s"\n[profiles.x.weight_memory]\n'
     'weight_bits = 8\naccess_bits = 64\nsram_kib = [8, 4]\nsram_j_per_access = [1e-12, 2e-12]\n'
     'dram_j_per_access = 1e-9\nsource = "s"\n', "profiles.x.weight_memory"),
])
def test_schema_errors_are_one_line_naming_file_and_field(tmp_path, body, key):
    path = tmp_path / "bad.toml"
    path.write_text("[profiles.x]\n" + body)
    with pytest.raises(SpikeportError) as err:
        load_profiles(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and key in message, message


SYNOP = '[profiles.x]\nkind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\nsource = "s"\n'


def _rows(*items) -> str:
    """[[profiles.x.validation.rows]] tables: (estimate, measurement, measured_j, estimate_j, fitted)."""
    return "".join(f'[[profiles.x.validation.rows]]\nestimate = "{e}"\nmeasurement = "{m}"\nmeasured_j = {a}\n'
                   f"estimate_j = {b}\nfitted = {'true' if f else 'false'}\n" for e, m, a, b, f in items)


@pytest.mark.parametrize("status, rows, why", [
    ("validated", [], "'validated' needs >= 2 measured rows within 2x"),
    ("validated", [("per-op", "lab A", 1e-6, 1.5e-6, False)], "give 'not reproduced'"),  # one is not two
    ("validated", [("per-op", "lab A", 1e-6, 1.5e-6, False), ("per-op", "lab B", 1e-6, 2.1e-6, False)],
     "(1 of 2 within 2x)"),  # 2.1x is not within 2x
    ("validated", [("per-op", "lab A", 1e-6, 1.5e-6, False), ("per-op", "lab A", 2e-6, 3e-6, False)],
     "(2 of 2 within 2x, from 1 measurement(s))"),  # the same measurement twice
    ("validated", [("per-op", "lab A", 1e-6, 1.5e-6, True), ("per-op", "lab B", 1e-6, 0.6e-6, False)],
     "give 'calibrated'"),  # fitted to lab A: an in-sample fit is not a reproduction
    ("calibrated", [("per-op", "lab A", 1e-6, 0.9e-6, False)], "'calibrated' needs a measured row within 2x"),
    ("not reproduced", [], "'not reproduced' needs measured rows"),
])
def test_a_status_the_rows_do_not_show_is_refused(tmp_path, status, rows, why):
    """A user's profile file may not declare 'validated' (or any status) that its measured rows do not give."""
    path = tmp_path / "mine.toml"
    path.write_text(SYNOP + f'[profiles.x.validation]\nstatus = "{status}"\nsummary = "s"\n' + _rows(*rows))
    with pytest.raises(SpikeportError) as err:
        load_profiles(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: profiles.x.validation: "), message
    assert why in message, message


def test_two_independent_rows_within_2x_validate_that_estimate_only(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(SYNOP + '[profiles.x.validation]\nstatus = "validated"\nsummary = "s"\n'
                    + _rows(("per-op", "lab A", 1e-6, 1.5e-6, False), ("per-op", "lab B", 1e-6, 0.55e-6, False)))
    e = estimate_energy(count_ops(two_layer()), load_profiles(path), ["x"])
    assert e["validation"]["x"]["per_op"] == {"status": "validated", "label": "validated (2 of 2 within 2x)"}
    assert e["validation"]["x"]["system"] is None
    assert [r["ratio"] for r in e["validation"]["x"]["rows"]] == pytest.approx([1.5, 0.55])


def test_a_system_row_needs_overhead_terms(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(SYNOP + '[profiles.x.validation]\nstatus = "not reproduced"\nsummary = "s"\n'
                    + _rows(("system", "lab A", 1e-6, 9e-6, False)))
    with pytest.raises(SpikeportError, match=r"mine\.toml: profiles\.x: .*needs the profile's \[overhead\] terms"):
        load_profiles(path)


def test_cli_refuses_a_validated_profile_without_evidence_exit_2(tmp_path):
    """The issue's case: a user's file declares status = 'validated' with a ratio; one line on stderr, exit 2,
    before anything runs (the run folder does not even exist)."""
    path = tmp_path / "mine.toml"
    path.write_text(SYNOP + '[profiles.x.validation]\nstatus = "validated"\nsummary = "s"\n'
                    + _rows(("per-op", "lab A", 1e-6, 1.2e-6, False)))
    res = cli("energy", str(tmp_path / "no-run"), "--profiles", str(path))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "'validated' needs >= 2" in lines[0], res.stderr


def test_unknown_top_level_key_and_empty_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('notez = ["typo"]\n[profiles.x]\nkind = "snn"\n[profiles.x.prices.synop]\nvalue_j = 1e-12\n'
                    'source = "s"\n')
    with pytest.raises(SpikeportError, match=r"bad\.toml: notez: unknown key"):
        load_profiles(path)
    path.write_text('notes = ["only notes"]\n')
    with pytest.raises(SpikeportError, match=r"bad\.toml: profiles: is missing"):
        load_profiles(path)
