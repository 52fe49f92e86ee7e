"""Data-parallel training with torchrun (2 gloo processes) against one process, same seed."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    spikeport = str(Path(sys.executable).with_name("spikeport"))
    args = ["train", "--data", "digits", "--epochs", "10", "--hidden", "64", "-T", "12"]
    one = subprocess.run([spikeport, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([torchrun, "--nproc-per-node", "2", spikeport, *args, "--out", str(tmp_path / "two"),
                          "--distributed"], capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["processes"] == 2 and m1["processes"] == 1
    # same global batches and averaged gradients: accuracy equal up to float summation order
    assert abs(m1["float_accuracy"] - m2["float_accuracy"]) <= 0.03
    assert abs(m1["quantized_accuracy"] - m2["quantized_accuracy"]) <= 0.03


def test_distributed_without_torchrun_is_a_clear_error(tmp_path):
    from tests.conftest import cli

    proc = cli("train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "x"), "--distributed")
    assert proc.returncode == 2 and "torchrun" in proc.stderr
