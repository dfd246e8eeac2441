"""Torch datasets over an index table, reading preprocessed arrays from the cache."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2

from vqc.data.cache import ImageCache
from vqc.data.masks import MASK_UNKNOWN, marks_nothing
from vqc.errors import DataError
from vqc.progress import phase

log = logging.getLogger(__name__)


class ImageDataset(Dataset[tuple[torch.Tensor, ...]]):
    """``(image, code)`` pairs; the image is a float tensor (channels, height, width).

    With ``mask_cache`` (a cache of ``vqc.data.masks.MaskPreprocessor``), ``(image, code,
    mask)`` triples: ``mask`` is ``uint8`` (height, width), 1 on defect pixels, augmented
    together with its image. An image of one of ``clean_codes`` (GOOD: nothing to mark) without
    a mask has an all-0 mask; an image of another class without a mask, or whose mask marks
    nothing, an all-``MASK_UNKNOWN`` one (it has a defect, but where is not known).
    """

    def __init__(self, frame: pd.DataFrame, cache: ImageCache,
                 transform: Callable[..., Any] | None = None,
                 mask_cache: ImageCache | None = None,
                 clean_codes: frozenset[int] = frozenset()) -> None:
        self.frame = frame.reset_index(drop=True)
        self.cache = cache
        self.transform = transform or build_transform()
        self._paths = self.frame["path"].tolist()
        self.libs: list[str | None] = self.frame["lib"].tolist()
        self.codes = self.frame["code"].to_numpy(dtype=np.int64)
        self.mask_cache, self.clean_codes = mask_cache, clean_codes
        column = self.frame["mask"] if "mask" in self.frame.columns else [None] * len(self)
        self._mask_paths: list[str | None] = [None if pd.isna(m) else m for m in column]

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """Image ``i`` of the table; ``(i, seed)`` draws its augmentations from ``seed``.

        A seeded draw (see ``EpochSampler``) does not touch the process's random state, so the
        augmentations of an image depend on nothing but its seed: not on the worker that
        loads it, nor on what that worker loaded before.
        """
        i, seed = item if isinstance(item, tuple) else (item, None)
        array = self.cache.get(self._paths[i], self.libs[i])
        inputs: tuple[Any, ...] = (tv_tensors.Image(torch.from_numpy(array)),)
        if self.mask_cache is None:
            return self._augment(inputs, seed)[0], int(self.codes[i])
        mask, known = self._mask(i, array.shape[-2:])
        image, mask = self._augment((*inputs, tv_tensors.Mask(mask)), seed)
        if not known:  # geometry may have filled a border with 0
            mask = torch.full_like(mask, MASK_UNKNOWN)
        return image, int(self.codes[i]), mask[0]

    def _augment(self, inputs: tuple[Any, ...], seed: int | None) -> tuple[torch.Tensor, ...]:
        if seed is None:
            out = self.transform(*inputs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = self.transform(*inputs)
        out = out if isinstance(out, tuple) else (out,)
        return tuple(t.as_subclass(torch.Tensor) for t in out)

    def _mask(self, i: int, size: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
        """Mask ``(1, height, width)`` of image ``i`` (0/1, or ``MASK_UNKNOWN`` throughout),
        and whether it is known."""
        clean = int(self.codes[i]) in self.clean_codes
        path = self._mask_paths[i]
        if path is not None:
            array = self.mask_cache.get(path, self.libs[i])  # type: ignore[union-attr]
            if clean or not marks_nothing(array):
                return torch.from_numpy(array), True
        elif clean:
            return torch.zeros((1, *size), dtype=torch.uint8), True
        return torch.full((1, *size), MASK_UNKNOWN, dtype=torch.uint8), False


def frame_batches(frame: pd.DataFrame, cache: ImageCache,
                  transform: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64,
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str | None]]]:
    """``(images, codes, libs)`` batches in table order, for fitting and scoring by die."""
    dataset = ImageDataset(frame, cache, transform)
    for start in range(0, len(dataset), batch_size):
        rows = range(start, min(start + batch_size, len(dataset)))
        images = torch.stack([dataset[i][0] for i in rows])
        codes = torch.from_numpy(dataset.codes[start:rows.stop].copy())
        yield images, codes, [dataset.libs[i] for i in rows]


def build_transform(augment: Sequence[Callable] = (), mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> v2.Compose:
    """uint8 image -> augmentations -> float in [0, 1] -> optional normalisation."""
    steps: list[Callable] = [*augment, v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)


def epoch_seed(seed: int, epoch: int, *more: int) -> int:
    """A 63-bit seed mixed from ``(seed, epoch, *more)``: the same in every process and run."""
    key = ",".join(str(int(n)) for n in (seed, epoch, *more)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


class EpochSampler(Sampler):
    """The training draws of one epoch, a function of ``(seed, epoch)`` alone.

    ``weights`` draws ``n`` indices with replacement in proportion to them (class-balanced
    sampling); without, the epoch is a permutation of ``range(n)``. Because nothing carries over
    from one epoch to the next, a run resumed at epoch ``e`` draws exactly what an
    uninterrupted run draws there. Lightning calls ``set_epoch`` before each epoch; without a
    call, each pass draws the next epoch. With ``seeds=True`` each draw is ``(index, seed)``,
    the seed of that image's augmentations (see ``ImageDataset``), so augmentations depend on
    ``(seed, epoch)`` only, whichever worker process applies them.
    """

    def __init__(self, n: int, seed: int, weights: torch.Tensor | None = None, epoch: int = 0,
                 seeds: bool = False) -> None:
        self.n, self.seed, self.epoch, self.seeds = n, int(seed), int(epoch), seeds
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        if self.weights is None:
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True,
                                      generator=generator)
        if not self.seeds:
            yield from order.tolist()
            return
        seeds = torch.randint(0, 2**62, (self.n,), generator=generator)
        yield from zip(order.tolist(), seeds.tolist(), strict=True)


#: ``data.balanced`` -> the power of the class count an image's draw weight divides by: 1
#: draws every class alike, ``sqrt`` halfway between that and the classes as they occur.
BALANCE_POWERS: dict[bool | str, float] = {True: 1.0, "sqrt": 0.5, False: 0.0}


def balanced_weights(codes: np.ndarray, power: float = 1.0) -> torch.Tensor:
    """Weights 1 / class count ** ``power`` (1: every class drawn equally often in
    expectation; 0.5: a class's share grows with the square root of its count)."""
    counts = np.bincount(codes).astype(float)
    return torch.as_tensor(1.0 / counts[codes] ** power, dtype=torch.double)


def class_shares(counts: dict[str, int], balanced: bool | str) -> dict[str, float]:
    """Each class's share of the training draws under ``data.balanced``."""
    power = BALANCE_POWERS[balanced]
    weights = {name: n ** (1 - power) for name, n in counts.items()}
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def balanced_sampler(codes: np.ndarray, seed: int, epoch: int = 0,
                     seeds: bool = False) -> EpochSampler:
    """Draws every class equally often in expectation (weights 1 / class count)."""
    return EpochSampler(len(codes), seed, balanced_weights(codes), epoch=epoch, seeds=seeds)


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
    with phase(description, len(todo)) as step:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(job, todo, chunksize=16)
                for path, error in results:
                    if error:
                        failures.append((path, error))
                    step.advance()
            # Workers counted in their own processes; count their decodes here.
            cache.stats.decoded += len(todo) - len(failures)
        else:
            for item in todo:
                path, error = job(item)
                if error:
                    failures.append((path, error))
                step.advance()
    return failures


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))
