"""Shared fixtures: one small trained and exported run per test session."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def need_fashion_mnist() -> None:
    """Skip a Fashion-MNIST test on a machine without the Debian dataset, but fail it in CI (CI=true),
    whose .ci/run installs the dataset: there a missing dataset is a broken set-up, not a reason to skip."""
    if FASHION_MNIST.is_dir():
        return
    if in_ci():
        pytest.fail(f"{FASHION_MNIST} is missing in CI (.ci/run installs dataset-fashion-mnist)")
    pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")


REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_peer_env(peer: str) -> Path:
    """The python of a peer's own environment (``.venv-<peer>``, or $SPIKEPORT_<PEER>_VENV), made by
    ``make test-peers`` for a peer whose pins clash with ours. Missing: skipped locally, failed in CI."""
    venv = Path(os.environ.get(f"SPIKEPORT_{peer.upper()}_VENV", REPO / f".venv-{peer}"))
    py = venv / "bin" / "python"
    if py.is_file():
        return py
    if in_ci():
        pytest.fail(f"{venv} is missing in CI (.ci/run runs `make test-peers`, which creates it)")
    pytest.skip(f"{peer}'s own environment {venv} is missing: run `make test-peers`")


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


def pytest_configure(config):
    """Lava sets the multiprocessing start method ('fork', Linux's default) when first imported and fails if
    anything chose one before; tests that run Lava in this process (the Loihi 2 recipe) import it wherever
    they come in the order, so it is imported first."""
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except ImportError:  # lava-nc missing: the tests that need it say so
        pass
