"""Data-parallel training across processes (``torchrun --nproc-per-node N spikeport train ... --distributed``).

Each of the W processes takes every W-th sample of the same shuffled batch, so the global batch is
the one a single process would use; DistributedDataParallel averages the gradients, which equals
the single-process gradient of that batch up to float summation order. gloo on CPU, nccl on GPU.
Only rank 0 evaluates and writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from spikeport.errors import SpikeportError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init(device: str = "cpu") -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the env)."""
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SpikeportError("--distributed needs to be launched by torchrun, e.g. "
                             "`torchrun --nproc-per-node 2 $(which spikeport) train ... --distributed`")
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    rank, size = dist.get_rank(), dist.get_world_size()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    return World(rank=rank, size=size, device=device)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """DistributedDataParallel around the model (a no-op for a single process)."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[torch.device(world.device).index] if world.device.startswith("cuda") else None)


def local_slice(idx: np.ndarray, world: World) -> np.ndarray:
    """This rank's share of one global batch of sample indices."""
    return idx[world.rank::world.size] if world.active else idx


def finish(world: World) -> None:
    if world.active:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
