"""Data-parallel pretraining over torch.distributed: the process group and the few collectives the trainer needs.

`contextemb pretrain ... --distributed`, launched by torchrun, runs one process per rank. Every rank builds the
same model (DistributedDataParallel also broadcasts rank 0's weights), reads the same corpus and keeps every
world_size-th batch of each pool (`BatchStream(rank=, world_size=)`), so one optimizer step sees world_size
batches: the same "global batch" a single process would see with all of them. The loss each rank
back-propagates is its summed NLL * world_size / (pieces in the global batch); DDP averages the gradients over
ranks, which makes the update exactly that of the mean NLL over the global batch.

gloo on CPU, nccl on GPU. Rank 0 alone prepares the model directory, writes checkpoints, metrics and
weights; the others wait at a barrier and then read config.json and tokenizer.model from it, so on several
machines --out must be a directory every rank can read (a shared filesystem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

import torch
import torch.distributed as dist

from contextemb.errors import ConfigError

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes; Ranks() is a single process with no group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Each value summed over all ranks (float64, so piece counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if `flag` is true on any rank (so all ranks stop at the same step)."""
        if not self.distributed:
            return flag
        return self.sum([1.0 if flag else 0.0], device)[0] > 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_distributed(device_type: str, timeout_minutes: float = 60.0) -> Ranks:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise ConfigError(f"--distributed needs the torchrun launcher (missing {', '.join(missing)}); "
                          f"run: torchrun --nproc-per-node N -m contextemb.cli.main pretrain ... --distributed")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl" and not dist.is_nccl_available():
        raise ConfigError("--distributed on CUDA needs NCCL, which this torch build lacks")
    if not dist.is_initialized():
        # the barrier after rank 0 trains the tokenizer may wait minutes: give it room
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(),
                 local_rank=int(os.environ["LOCAL_RANK"]),
                 local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())))


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
