"""``spikeport train --resume``: per-epoch training state in safetensors + JSON (no pickle), restored
exactly, so an interrupted run ends with the bit-identical weights of an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spikeport.errors import SpikeportError
from spikeport.train import resume
from spikeport.train.config import TrainConfig
from spikeport.train.loop import train

SMALL = dict(data="digits", epochs=4, hidden=[24], time_steps=6, limit=300, seed=7, batch_size=32)


class Interrupt(Exception):
    pass


def _stop_at(epoch: int):
    """A progress callback that interrupts the first batch of epoch ``epoch`` (0-based): the state of
    ``epoch`` finished epochs is on disk, the current one is lost mid-way."""
    def cb(_stage, done, total):
        steps = total // SMALL["epochs"]
        if done == epoch * steps + 1:
            raise Interrupt()
    return cb


def _weights(run: Path) -> dict:
    return load_file(str(run / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """The uninterrupted run (``resume=True`` on an empty folder starts from scratch)."""
    run = tmp_path_factory.mktemp("full")
    assert train(TrainConfig(**SMALL), run, resume=True)["resumed_from_epoch"] == 0
    return run


@pytest.mark.parametrize("k", [1, 3])
def test_resume_after_interrupt_is_bit_identical(full, tmp_path, k):
    with pytest.raises(Interrupt):
        train(TrainConfig(**SMALL), tmp_path, progress=_stop_at(k))
    doc, _ = resume.read_state(tmp_path)
    assert doc["epoch"] == k and not (tmp_path / "model.safetensors").exists()
    metrics = train(TrainConfig(**SMALL), tmp_path, resume=True)
    assert metrics["resumed_from_epoch"] == k
    assert _same(_weights(full), _weights(tmp_path))
    assert metrics["history"] == json.loads((full / "metrics.json").read_text())["history"]


def test_state_file_is_tensors_and_json_only(full):
    raw = (full / resume.STATE).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    doc = json.loads(header["__metadata__"]["spikeport"])
    assert doc["epoch"] == SMALL["epochs"] and doc["config"]["seed"] == SMALL["seed"]
    assert {"model.layers.0.weight", "rng.torch"} <= set(header) and any(k.startswith("optim.") for k in header)
    assert b"\x80\x04" not in raw[:8 + n]  # no pickle in the header


def test_resume_refuses_another_configuration(full, tmp_path):
    with pytest.raises(Interrupt):
        train(TrainConfig(**SMALL), tmp_path, progress=_stop_at(2))
    with pytest.raises(SpikeportError, match="another configuration.*lr"):
        train(TrainConfig(**{**SMALL, "lr": 0.01}), tmp_path, resume=True)


def test_corrupt_state_is_a_clear_error(full, tmp_path):
    (tmp_path / "checkpoint").mkdir()
    data = bytearray((full / resume.STATE).read_bytes())
    data[40:60] = b"\x00" * 20
    (tmp_path / resume.STATE).write_bytes(bytes(data))
    with pytest.raises(SpikeportError, match="state.safetensors"):
        train(TrainConfig(**SMALL), tmp_path, resume=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spikeport.cli", *args]


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores; make test-slow runs it
def test_sigkill_then_cli_resume_matches_uninterrupted(tmp_path):
    """SIGKILL `spikeport train` after its first finished epoch, then `spikeport train --out RUN --resume`
    (no other option: the configuration comes from the state file)."""
    opts = ["--data", "digits", "--epochs", "4", "--hidden", "24", "-T", "6", "--limit", "600", "--seed", "5"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    proc = subprocess.Popen(_cli("train", *opts, "--out", str(cut)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ref = subprocess.run(_cli("train", *opts, "--out", str(whole)), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    deadline = time.monotonic() + 240
    while not (cut / resume.STATE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (cut / resume.STATE).exists()
    killed_at = resume.read_state(cut)[0]["epoch"]
    res = subprocess.run(_cli("train", "--out", str(cut), "--resume"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((cut / "metrics.json").read_text())["resumed_from_epoch"] == killed_at
    assert _same(_weights(whole), _weights(cut))
