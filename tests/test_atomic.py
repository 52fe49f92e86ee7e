"""Atomic outputs: SIGKILL at random points of train / export / deploy / parity never leaves a partial or
corrupt output. Every output file present afterwards loads and validates; the only leftovers are
hidden temporary names (``.NAME.XXXX.tmp``) that nothing reads. A killed Lava deploy leaves no
Lava process behind."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from spikeport.files import fileio
from tests.test_supervise import marked_processes

TEMP = re.compile(r"^\..+\.tmp$")
KILLS = {"train": 1, "export": 1, "deploy-emulator": 1, "deploy-lava": 1, "parity": 1}  # x4 in the slow campaign


def validate_outputs(folder: Path) -> dict:
    """Load every output under ``folder`` with spikeport's own readers; returns counts of files
    validated and temporary leftovers. A file that does not load fails the test."""
    import safetensors.torch

    from spikeport.nirfmt.load import load_nir
    from spikeport.train import checkpoint, resume

    seen = {"valid": 0, "temporary": 0}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if TEMP.match(path.name):
            seen["temporary"] += 1
            continue
        if path.name == "state.safetensors":
            resume.read_state(path.parent.parent)
        elif path.suffix == ".safetensors":
            safetensors.torch.load_file(str(path))
        elif path.suffix == ".json":
            fileio.read_json(path)
        elif path.suffix == ".nir":
            load_nir(path)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                [z[k] for k in z.files]
        elif path.suffix in (".md", ".html"):
            path.read_text(encoding="utf-8")
        else:
            raise AssertionError(f"unexpected output {path}")
        seen["valid"] += 1
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        checkpoint.load(folder)  # the pair is consistent (weights_sha256)
    return seen


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spikeport.cli", *args]


def _run_and_kill(args: list[str], delay: float, env: dict | None = None, after: Path | None = None) -> int | None:
    """Start the CLI and SIGKILL it ``delay`` seconds after start (or after ``after`` appeared) unless it
    ended first; returns its exit code, or None when it was killed."""
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    if after is not None:
        while not after.exists() and proc.poll() is None:
            time.sleep(0.02)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return None


def _timed(args: list[str]) -> float:
    t0 = time.monotonic()
    res = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return time.monotonic() - t0


TRAIN = ["--data", "digits", "--epochs", "4", "--hidden", "32", "-T", "8", "--limit", "500"]


def kill_campaign(tiny_run: Path, tmp_path: Path, kills: dict, seed: int) -> list:
    """SIGKILL each stage ``kills[stage]`` times at random points of the phase where it writes files;
    returns (stage, exit code or None, validate_outputs(...)) per kill."""
    rng = np.random.default_rng(seed)
    base = tmp_path / "base"
    shutil.copytree(tiny_run, base)
    t_export = _timed(["export", str(base)])
    deploy = ["deploy", str(base / "model.nir"), "--samples", "60", "--out"]
    t_dep = {b: _timed([*deploy, str(tmp_path / f"ref-{b}"), "--backend", b])
             for b in ("emulator", "lava") if kills[f"deploy-{b}"]}
    t_par = _timed(["parity", str(base), "--backend", "emulator", "--samples", "60"])
    validate_outputs(base)
    report = []
    for i in range(kills["train"]):  # killed after its first per-epoch checkpoint, at a random later point
        run = tmp_path / f"train{i}"
        code = _run_and_kill(["train", *TRAIN, "--out", str(run)], float(rng.uniform(0.0, 4.0)),
                             after=run / "checkpoint" / "state.safetensors")
        report.append(("train", code, validate_outputs(run)))
    for _ in range(kills["export"]):  # over an existing model.nir: the old file or the new one, never half
        code = _run_and_kill(["export", str(base)], float(rng.uniform(0.5, 1.05)) * t_export)
        report.append(("export", code, validate_outputs(base)))
    for backend in ("emulator", "lava"):
        for i in range(kills[f"deploy-{backend}"]):
            marker = uuid.uuid4().hex
            folder = tmp_path / f"dep-{backend}{i}"
            code = _run_and_kill([*deploy, str(folder), "--backend", backend],
                                 float(rng.uniform(0.5, 1.05)) * t_dep[backend],
                                 {**os.environ, "SPIKEPORT_TEST_MARK": marker})
            report.append((f"deploy-{backend}", code, validate_outputs(folder) if folder.exists() else {}))
            deadline = time.monotonic() + 10
            while marked_processes(marker) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert marked_processes(marker) == [], "a Lava process outlived the killed deploy"
    for _ in range(kills["parity"]):
        code = _run_and_kill(["parity", str(base), "--backend", "emulator", "--samples", "60"],
                             float(rng.uniform(0.5, 1.05)) * t_par)
        report.append(("parity", code, validate_outputs(base)))
    for stage, code, seen in report:
        print(f"{stage}: {'killed' if code is None else f'exit {code}'} -> {seen}")
    return report


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_sigkill_at_random_points_leaves_only_valid_outputs(tiny_run, tmp_path):
    report = kill_campaign(tiny_run, tmp_path, KILLS, seed=2024)
    assert sum(code is None for _, code, _ in report) >= len(report) // 2  # most runs were really killed


@pytest.mark.slow
def test_sigkill_campaign_long(tiny_run, tmp_path):
    report = kill_campaign(tiny_run, tmp_path, {k: 4 * v for k, v in KILLS.items()}, seed=7)
    assert sum(code is None for _, code, _ in report) >= len(report) // 2


_HALF_WRITE = """
import os, signal, sys
from spikeport.files import fileio
def writer(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"new-" * 1000)
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
fileio.write_with(sys.argv[1], writer)
"""


@pytest.mark.parametrize("existing", [False, True])
def test_kill_inside_a_write_keeps_the_old_file_or_none(tmp_path, existing):
    target = tmp_path / "out.json"
    if existing:
        target.write_text('{"old": true}\n')
    proc = subprocess.run([sys.executable, "-c", _HALF_WRITE, str(target)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if existing:
        assert fileio.read_json(target) == {"old": True}
    else:
        assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(TEMP.match(n) for n in leftovers) and len(leftovers) == 1


def test_writers_go_through_fileio():
    """No module writes an output file directly: np.save / savez / nir.write / save_file / write_text /
    open(..., "w") appear only inside fileio or as the writer callback given to it."""
    root = Path(__file__).resolve().parent.parent / "spikeport"
    direct = re.compile(r"(\.write_text\(|\.write_bytes\(|np\.savez?(_compressed)?\(|save_file\(|nir\.write\(|"
                        r"open\([^)]*['\"][wa]b?['\"])")
    scratch = {"fileio.py": "the atomic writers themselves",
               "lava_child.py": "the supervisor's private temporary folder (read only after exit code 0)",
               "models.py": "Lava process models recording into that temporary folder"}
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in scratch:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if direct.search(line) and "fileio." not in line and "lambda tmp" not in line and "tmp" not in line:
                offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_keep_the_users_umask(tmp_path, umask, mode):
    """An output is readable by whoever the user's umask lets read a new file (not always 0600, the
    temporary file's mode), like a file the user wrote with ``open(path, "w")``."""
    from spikeport.files import fileio

    old = os.umask(umask)
    try:
        fileio.write_json(tmp_path / "r.json", {"a": 1})
        fileio.write_npz(tmp_path / "r.npz", {"a": np.zeros(2)})
        with open(tmp_path / "plain.txt", "w") as fh:  # the reference: what the OS gives a new file
            fh.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "r.npz").stat().st_mode & 0o777 == mode
