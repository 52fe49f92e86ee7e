"""Shared fixtures: one small trained and exported run per test session."""
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A CUBA-LIF MLP trained briefly on digits and exported to NIR (the demo's network, fewer epochs)."""
    from spikeport.export.nir_export import export_run
    from spikeport.train.config import TrainConfig
    from spikeport.train.loop import train

    run = tmp_path_factory.mktemp("tiny_run")
    train(TrainConfig(data="digits", epochs=12, hidden=[64], time_steps=12), run)
    export_run(run)
    return run


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the spikeport CLI in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "spikeport.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
