"""Data-parallel calibration: shard by index, all-reduce the sums.

When ``torch.distributed`` is initialised (``torchrun``, or ``init_process_group`` by hand)
rank ``r`` of ``w`` takes the samples whose index is ``r (mod w)``; each rank accumulates
its shard into a :class:`~calibration.accumulator.ShiftAccumulator`, and at the end the
accumulators' sum tensors (counts included) are all-reduced. Since every statistic is a
function of those sums, N processes give the same vectors as one (up to float64 summation
order). The probe samples are all-gathered and re-keyed by global index, so the
separability probe sees the same data on every rank as in a single process.

Without ``torch.distributed`` (or with world size 1) every function here is a no-op.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import torch

from calibration.accumulator import ProbeStore, ShiftAccumulator

T = TypeVar("T")


def init_from_env(device: str | None, device_map: str | None) -> str | None:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    NCCL on GPUs (each rank on ``cuda:LOCAL_RANK`` unless ``device`` / ``device_map`` says
    otherwise), gloo on CPUs or when ``device`` is ``cpu``. Returns the device this rank should load the model on. A
    no-op outside torchrun or when a group is already initialised.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available() or is_distributed():
        return device
    on_cpu = str(device or "").startswith("cpu")
    backend = "nccl" if torch.cuda.is_available() and not on_cpu else "gloo"  # NCCL cannot reduce CPU tensors
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        if device is None and device_map is None:
            device = f"cuda:{local_rank}"
    torch.distributed.init_process_group(backend=backend)
    return device


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if not is_distributed():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share: every ``world``-th item starting at ``rank``."""
    if rank is None or world is None:
        rank, world = rank_and_world()
    return list(items[rank::world])


def _comm_device() -> torch.device:
    if is_distributed() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_accumulator(acc: ShiftAccumulator) -> ShiftAccumulator:
    """Sum every rank's accumulator into each rank's (in place); returns it."""
    if not is_distributed() or torch.distributed.get_world_size() == 1:
        return acc
    device = _comm_device()
    for tensor in acc.tensors():
        buf = tensor.to(device)
        torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
        tensor.copy_(buf.cpu())
    return acc


def all_gather_probe(store: ProbeStore) -> ProbeStore:
    """Union of every rank's probe samples (each rank gets all of them)."""
    if not is_distributed() or torch.distributed.get_world_size() == 1:
        return store
    gathered: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, store.state_dict())
    merged = ProbeStore(store.layers, store.hidden_size)
    for state in gathered:
        merged.merge(ProbeStore.from_state_dict(state))
    return merged


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (picklable objects)."""
    if not is_distributed() or torch.distributed.get_world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if is_distributed() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()
