"""Torch datasets over an index table, reading preprocessed arrays from the cache."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress
from torch.utils.data import Dataset, WeightedRandomSampler
from torchvision import tv_tensors
from torchvision.transforms import v2

from vqc.data.cache import ImageCache
from vqc.errors import DataError

log = logging.getLogger(__name__)


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """``(image, code)`` pairs; the image is a float tensor (channels, height, width)."""

    def __init__(self, frame: pd.DataFrame, cache: ImageCache,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.frame = frame.reset_index(drop=True)
        self.cache = cache
        self.transform = transform or build_transform()
        self._paths = self.frame["path"].tolist()
        self._libs = self.frame["lib"].tolist()
        self.codes = self.frame["code"].to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        array = self.cache.get(self._paths[i], self._libs[i])
        image = tv_tensors.Image(torch.from_numpy(array))
        return self.transform(image).as_subclass(torch.Tensor), int(self.codes[i])


def frame_batches(frame: pd.DataFrame, cache: ImageCache,
                  transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64,
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str | None]]]:
    """``(images, codes, libs)`` batches in table order, for fitting and scoring by die."""
    dataset = ImageDataset(frame, cache, transform)
    for start in range(0, len(dataset), batch_size):
        rows = range(start, min(start + batch_size, len(dataset)))
        images = torch.stack([dataset[i][0] for i in rows])
        codes = torch.from_numpy(dataset.codes[start:rows.stop].copy())
        yield images, codes, [dataset._libs[i] for i in rows]


def build_transform(augment: Sequence[Callable] = (), mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> v2.Compose:
    """uint8 image -> augmentations -> float in [0, 1] -> optional normalisation."""
    steps: list[Callable] = [*augment, v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)


def balanced_sampler(codes: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Draws every class equally often in expectation (weights 1 / class count)."""
    counts = np.bincount(codes)
    weights = 1.0 / counts[codes]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double),
                                 num_samples=len(codes), replacement=True, generator=generator)


@dataclass
class _Job:
    cache: ImageCache

    def __call__(self, item: tuple[str, str | None]) -> tuple[str, str | None]:
        path, lib = item
        try:
            self.cache.get(path, lib)
        except DataError as err:
            return path, str(err)
        return path, None


def warm_cache(cache: ImageCache, frame: pd.DataFrame, workers: int = 0,
               description: str = "caching images") -> list[tuple[str, str]]:
    """Preprocess every image of ``frame`` into the cache; returns ``(path, error)`` failures."""
    items = list(zip(frame["path"], frame["lib"], strict=True))
    todo = [it for it in items if not cache.entry_path(it[0]).is_file()] if items else []
    failures: list[tuple[str, str]] = []
    if not todo:
        return failures
    job = _Job(cache)
    workers = min(workers, len(todo))
    with Progress(transient=True) as progress:
        task = progress.add_task(description, total=len(todo))
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(job, todo, chunksize=16)
                for path, error in results:
                    if error:
                        failures.append((path, error))
                    progress.advance(task)
            # Workers counted in their own processes; count their decodes here.
            cache.stats.decoded += len(todo) - len(failures)
        else:
            for item in todo:
                path, error = job(item)
                if error:
                    failures.append((path, error))
                progress.advance(task)
    return failures


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))
