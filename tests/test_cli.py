"""Each CLI command on a tiny run, and bad inputs as one-line errors with exit code 2."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

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
    proc = cli("energy", str(run), "--samples", "20", "--profile", "loihi", "--profile", "ann-fp32-45nm")
    assert proc.returncode == 0, proc.stderr
    energy = json.loads((run / "energy.json").read_text())
    assert set(energy["energy_j"]) == {"loihi", "ann-fp32-45nm"}
    # two labelled estimates, each with its own status (issue 27): loihi's per-op figure is not "calibrated"
    assert "per-op" in proc.stdout and "system" in proc.stdout and "(+ idle," in proc.stdout
    loihi = re.search(r"\n\s*loihi\s+SNN\s+[\d.]+ [nu]J\s+(\S+)\s+[\d.]+ [nu]J\s+(\S+)", proc.stdout)
    assert loihi and loihi.groups() == ("not", "calibrated"), proc.stdout  # "not / reproduced" wraps
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


def test_internal_error_exits_3_with_the_traceback_in_a_file(tiny_run, tmp_path):
    """A bug (here: report writing raises ZeroDivisionError) is not bad input: exit 3, one line that says
    so and names the file holding the traceback."""
    code = ("import sys\nimport spikeport.report.markdown as md\n"
            "def boom(*a, **k):\n    return 1 / 0\n"
            "md.write = boom\nfrom spikeport.cli import main\n"
            f"sys.argv = ['spikeport', 'report', {str(tiny_run)!r}]\nmain()\n")
    env = {k: v for k, v in os.environ.items() if k != "SPIKEPORT_DEBUG"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "internal error (a bug in spikeport" in lines[0], proc.stderr
    saved = Path(lines[0].rsplit("traceback saved to ", 1)[1])
    assert saved.parent == tmp_path
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError" in text and "def boom" not in lines[0]


def test_bad_input_is_exit_2_and_a_gate_failure_is_not_a_bug(tmp_path):
    proc = cli("deploy", str(tmp_path / "missing.nir"), "--backend", "emulator")
    assert "missing.nir" in one_line_error(proc)


def _in_terminal(*args: str, timeout: float = 240) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; returns (exit code, all it printed)."""
    import pty
    import select

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "spikeport.cli", *args], stdin=child, stdout=child, stderr=child,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"}, close_fds=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("args, bar", [
    (("parity", "{run}", "--backend", "emulator", "--samples", "300"), "parity: emulator"),
    pytest.param(("energy", "{run}", "--samples", "300", "--profile", "loihi"), "energy (steps)",
                 marks=pytest.mark.slow),  # one bar in make test (10 minutes on 2 cores); the rest in test-slow
    pytest.param(("deploy", "{run}/model.nir", "--backend", "emulator", "--samples", "300"), "emulator (samples)",
                 marks=pytest.mark.slow),
])
def test_long_commands_show_progress_in_a_terminal_only(tiny_run, tmp_path, args, bar):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = tuple(a.format(run=run) for a in args)
    code, shown = _in_terminal(*args)
    assert code == 0, shown[-2000:]
    assert bar in shown, shown[-2000:]
    code, quiet = _in_terminal(*args, "--quiet")
    assert code == 0 and bar not in quiet, quiet[-2000:]
    piped = cli(*args)  # stdout is a pipe here: no bar on stderr either
    assert piped.returncode == 0 and bar not in piped.stderr + piped.stdout
