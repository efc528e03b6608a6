"""A DistributedSampler that can start part-way through an epoch (exact mid-epoch resume)."""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (one shard per rank, shuffled per epoch from ``seed + epoch``) whose
    iteration skips the first ``start`` samples of this rank's shard.

    ``set_epoch(epoch, start=k * batch_size)`` replays epoch ``epoch`` from batch ``k``; the order
    is the same as an uninterrupted run's because the permutation depends only on seed and epoch.
    Works single-process too (``num_replicas=1, rank=0``).
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.start = max(0, int(start))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
