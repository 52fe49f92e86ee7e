"""Each CLI command on a tiny run, and bad inputs as one-line errors with exit code 2."""
import json
import shutil

import pytest

from tests.conftest import cli


def one_line_error(proc):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("spikeport: error:"), proc.stderr
    return lines[0]


def test_help_for_every_command():
    for cmd in ("train", "export", "deploy", "parity", "energy", "report", "demo"):
        proc = cli(cmd, "--help")
        assert proc.returncode == 0 and "Usage" in proc.stdout, cmd


def test_train_export_deploy_parity_energy_report(tmp_path):
    run = tmp_path / "x"
    assert cli("train", "--data", "digits", "--epochs", "2", "--hidden", "32", "-T", "8", "--out", str(run)).returncode == 0
    assert {p.name for p in run.iterdir()} >= {"model.safetensors", "config.json", "metrics.json"}
    assert cli("export", str(run)).returncode == 0
    assert (run / "model.nir").is_file()
    proc = cli("deploy", str(run / "model.nir"), "--data", "digits", "--backend", "emulator", "--samples", "40",
               "--out", str(run / "deploy"))
    assert proc.returncode == 0, proc.stderr
    dep = json.loads((run / "deploy" / "deploy.json").read_text())
    assert dep["samples"] == 40
    proc = cli("parity", str(run), "--backend", "lava", "--samples", "20")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "parity.json").read_text())["spike_mismatches"] == 0
    assert cli("energy", str(run), "--samples", "20", "--profile", "loihi", "--profile", "ann-fp32-45nm").returncode == 0
    energy = json.loads((run / "energy.json").read_text())
    assert set(energy["energy_j"]) == {"loihi", "ann-fp32-45nm"}
    assert cli("report", str(run)).returncode == 0
    assert "Parity per layer" in (run / "report.md").read_text()


def test_parity_gate_exits_1_on_mismatch(tiny_run, tmp_path):
    """A graph that differs from the checkpoint by one threshold fails the gate with exit code 1."""
    import h5py

    run = tmp_path / "tampered"
    shutil.copytree(tiny_run, run)
    with h5py.File(run / "model.nir", "r+") as f:
        ds = f["node/nodes/lif0/metadata/loihi/vth"]
        ds[()] = int(ds[()]) - 5
    proc = cli("parity", str(run), "--backend", "emulator", "--samples", "30")
    assert proc.returncode == 1, proc.stderr
    assert "first divergence" in proc.stderr
    first = json.loads((run / "parity.json").read_text())["first_divergence"]
    assert first["layer"] == "lif0" and first["pair"] == "reference-emulator"
    assert {"u", "v"} <= set(first["emulator_state"])


@pytest.mark.parametrize("make_bad", ["missing", "text_as_nir", "other_shape", "samples0"])
def test_bad_inputs_are_one_line_errors(make_bad, tiny_run, tmp_path):
    if make_bad == "missing":
        msg = one_line_error(cli("deploy", str(tmp_path / "nope.nir"), "--backend", "emulator"))
        assert "nope.nir" in msg
    elif make_bad == "text_as_nir":
        bad = tmp_path / "model.nir"
        bad.write_text("this is not a graph\n")
        msg = one_line_error(cli("deploy", str(bad), "--backend", "emulator"))
        assert "not a NIR file" in msg
    elif make_bad == "other_shape":
        run = tmp_path / "other"
        shutil.copytree(tiny_run, run)
        cfg = json.loads((run / "config.json").read_text())
        cfg["config"]["hidden"] = [17]
        (run / "config.json").write_text(json.dumps(cfg))
        msg = one_line_error(cli("parity", str(run), "--backend", "emulator", "--samples", "5"))
        assert "model.safetensors" in msg and "shape" in msg
    else:
        msg = one_line_error(cli("parity", str(tiny_run), "--backend", "emulator", "--samples", "0"))
        assert "--samples" in msg
