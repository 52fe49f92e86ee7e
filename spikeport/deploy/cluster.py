"""Parity that outgrows one machine: sample shards on a Ray cluster, merged exactly.

Samples are independent (every population resets at its sample window), so contiguous shards of the
batch run anywhere and concatenate to the one-process result (:mod:`spikeport.deploy.shards`). Each
shard is a Ray task; on a worker it runs the backend as it would locally: Lava in the supervised child
process (:mod:`spikeport.deploy.supervise`: timeout, heartbeat, process-group kill), or the emulator.
A task whose worker dies (node lost, process killed) or whose run fails is run again, up to
``retries`` times, so the merged spikes are those of a complete run or the command fails with one line.

The network travels as the plain arrays of :func:`spikeport.core.netio.save_arrays` and the inputs as an
integer array; every worker needs the same spikeport (and Lava) installed. Ray is the optional extra
``spikeport[cluster]``.
"""
from __future__ import annotations

import numpy as np

from spikeport.core.net import LoihiNet
from spikeport.core.netio import load_arrays, save_arrays
from spikeport.deploy.shards import merge, split
from spikeport.errors import SpikeportError

RETRIES = 2  # runs of a shard after the first, on worker death or failure


def _shard(arrays: dict, x: np.ndarray, backend: str, record: str, timeout_s: float) -> list[np.ndarray]:
    """One shard on a worker: spikes per recorded population [T, b, N] bool."""
    net = load_arrays(arrays)
    if backend == "lava":
        from spikeport.deploy.supervise import run_lava

        return run_lava(net, x, record=record, timeout_s=timeout_s)
    from spikeport.deploy import emulator

    spikes = emulator.run(net, x).spikes
    return spikes[-1:] if record == "output" else spikes


def connect(address: str):
    """The ``ray`` module, connected to the cluster at ``address`` ("HOST:PORT" of a running head node,
    "auto" for the one this machine belongs to, or "local" to start one in this process)."""
    try:
        import ray
    except ImportError:
        raise SpikeportError("--cluster needs Ray: pip install 'spikeport[cluster]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, log_to_driver=False,
                     include_dashboard=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise SpikeportError(f"--cluster {address}: cannot connect to a Ray cluster ({str(err).splitlines()[0]})") from None
    return ray


def run_on_cluster(net: LoihiNet, x: np.ndarray, backend: str, address: str, *, shards: int | None = None,
                   record: str = "all", timeout_s: float = 1800.0, retries: int = RETRIES) -> list[np.ndarray]:
    """Spikes of ``backend`` ("lava" or "emulator") on x [T, B, ...], computed as ``shards`` Ray tasks
    (default: one per CPU of the cluster) and merged along the batch axis."""
    if backend not in ("lava", "emulator"):
        raise SpikeportError(f"--cluster runs the lava or emulator backend, not {backend!r}")
    ray = connect(address)
    n = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(_shard)
    arrays = ray.put(save_arrays(net))
    futures = [task.remote(arrays, part, backend, record, timeout_s) for part in split(x, n)]
    try:
        return merge(ray.get(futures, timeout=timeout_s * (retries + 1)))
    except ray.exceptions.GetTimeoutError:
        raise SpikeportError(f"the cluster did not finish within {timeout_s * (retries + 1):.0f} s") from None
    except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
        cause = getattr(err, "cause", None) or err
        raise SpikeportError(f"a shard failed {retries + 1} times on the cluster: "
                             f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}") from None
