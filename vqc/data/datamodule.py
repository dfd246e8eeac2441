"""Lightning data module: index, cache, split, sampling and loaders in one place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from vqc.classes import ClassSet
from vqc.data.cache import ImageCache
from vqc.data.dataset import (
    BALANCE_POWERS,
    EpochSampler,
    ImageDataset,
    balanced_weights,
    build_transform,
    default_workers,
    warm_cache,
)
from vqc.data.index import DataIndex, OnBad, build_index
from vqc.data.layouts import DataSource
from vqc.data.leakage import leakage_note
from vqc.data.masks import MaskPreprocessor, check_mask_sizes, has_masks, marks_nothing
from vqc.data.preprocess import Preprocessor
from vqc.data.split import stratified_split
from vqc.errors import ConfigError, DataError
from vqc.io import write_csv_atomic

log = logging.getLogger(__name__)


class VqcDataModule(L.LightningDataModule):
    """Reads a data set once, caches its preprocessed images and serves train/val/test loaders.

    The validation set is a seeded stratified part of the training table (see
    ``stratified_split``); the test set comes from the source's test split or test CSV.
    ``masks=True``: training batches are ``(images, codes, masks)`` with each image's pixel
    defect mask (``ImageDataset``); validation and test batches stay ``(images, codes)``.
    """

    def __init__(
        self,
        source: DataSource,
        preprocess: Preprocessor,
        cache_dir: str,
        classes: ClassSet | None = None,
        good: str | None = None,
        open_set: str | None = None,
        val_fraction: float = 0.2,
        group_by: str | None = None,
        balanced: bool | str = True,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_workers: int | None = None,
        augment: Sequence[Callable] = (),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        on_bad_image: OnBad = "error",
        seed: int = 0,
        prepare: Callable[[], Any] | None = None,
        masks: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size}: expected >= 1")
        if group_by not in (None, "group", "lib", "window"):
            raise ConfigError(f"data.group_by={group_by!r}: expected null, 'group', 'lib' or "
                              "'window'")
        self.source = source
        self.preprocess = preprocess
        self.cache = ImageCache(cache_dir, preprocess)
        self.masks = masks
        self.mask_cache = ImageCache(cache_dir, MaskPreprocessor(preprocess)) if masks else None
        self.class_config = classes
        self.good, self.open_set = good, open_set
        self.val_fraction, self.group_by, self.balanced = val_fraction, group_by, balanced
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.cache_workers = default_workers() if cache_workers is None else cache_workers
        self.train_transform = build_transform(augment, mean, std)
        self.eval_transform = build_transform((), mean, std)
        self.on_bad_image, self.seed = on_bad_image, seed
        self._prepare = prepare
        self.index: DataIndex | None = None
        self.train_frame = self.val_frame = self.test_frame = None

    # -- set-up -----------------------------------------------------------------------------
    def _build_index(self) -> DataIndex:
        return build_index(self.source, self.class_config,
                           known_libs=list(self.preprocess.rotate_crop),
                           on_bad_image=self.on_bad_image, good=self.good,
                           open_set=self.open_set)

    def prepare_data(self) -> None:
        """Generate the data set if configured to, then fill the cache (rank 0 only)."""
        if self._prepare is not None:
            self._prepare()
        index = self._build_index()
        for name, frame in (("train", index.train), ("test", index.test)):
            if frame is not None:
                warm_cache(self.cache, frame, self.cache_workers, f"caching {name} images")
        if self.mask_cache is not None and has_masks(index.train):
            self._warm_masks(index.train)

    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        if self._prepare is not None:
            self._prepare()
        index = self._build_index()
        index.train = self._drop_bad_images(index.train, index)
        if index.test is not None:
            index.test = self._drop_bad_images(index.test, index)
        leak = leakage_note(index.train, index.test)  # once a run: setup builds one index
        if leak:
            log.warning("%s", leak)
            index.warnings.append(leak)
        train_idx, val_idx = self._split(index.train)
        self.index = index
        self.train_frame = index.train.iloc[train_idx].reset_index(drop=True)
        self.val_frame = index.train.iloc[val_idx].reset_index(drop=True)
        self.test_frame = index.test
        self._check_trained_classes_present()
        if self.masks:
            self._prepare_masks(index.train)
        if index.skipped:  # the run writes the list into its own folder (not the shared cache)
            log.warning("%d image(s) skipped (data.on_bad_image=skip)", len(index.skipped))

    def _split(self, train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rows that train and rows that validate: the source's own ``val`` rows (a ``val/``
        folder, split ``val`` in a CSV) when it has some, else a stratified share."""
        is_val = (train["split"] == "val").to_numpy(dtype=bool)
        if is_val.any():
            log.info("validating on the data set's own %d val image(s) (data.val_fraction "
                     "unused)", int(is_val.sum()))
            return np.flatnonzero(~is_val), np.flatnonzero(is_val)
        groups = None if self.group_by is None else train[self.group_by].to_numpy()
        return stratified_split(train["code"].to_numpy(), self.val_fraction, self.seed, groups)

    def _drop_bad_images(self, frame: pd.DataFrame, index: DataIndex) -> pd.DataFrame:
        failures = warm_cache(self.cache, frame, self.cache_workers)
        if not failures:
            return frame
        if self.on_bad_image == "error":
            shown = "\n  ".join(error for _, error in failures[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            raise DataError(f"{len(failures)} unusable image(s) (set data.on_bad_image=skip to "
                            f"skip them):\n  {shown}{more}")
        index.skipped.extend(failures)
        for path, error in failures:
            log.warning("skipped %s: %s", path, error)
        bad = {path for path, _ in failures}
        return frame[~frame["path"].isin(bad)].reset_index(drop=True)

    def _prepare_masks(self, train: pd.DataFrame) -> None:
        """Check the training masks against their images, cache them, and say how many
        defect images train without knowing where their defect is."""
        if not has_masks(train):
            raise ConfigError("module.mask_weight > 0 trains with pixel masks, but no training "
                              "image has one: name the CSV's mask column in data.columns.mask "
                              "(layout csv) or a folder of masks in data.masks_root (layout "
                              "folders), or set module.mask_weight=0")
        check_mask_sizes(train)
        named = self._warm_masks(train)
        good = self.classes.good_code
        defects = train[train["code"] != good] if good is not None else train
        no_mask = int(defects["mask"].isna().sum())
        blank = sum(marks_nothing(self.mask_cache.get(path, lib))  # type: ignore[union-attr]
                    for path, lib in zip(defects["mask"].dropna(),
                                         defects.loc[defects["mask"].notna(), "lib"],
                                         strict=True))
        log.info("training with the pixel masks of %d of %d image(s)", len(named), len(train))
        if no_mask or blank:
            log.warning("%d defect image(s) without a mask and %d whose mask marks no pixel at "
                        "%s: they train their class, not where the defect is",
                        no_mask, blank, "x".join(map(str, self.preprocess.size)))

    def _warm_masks(self, train: pd.DataFrame) -> pd.DataFrame:
        """Cache the masks ``train`` names; returns the rows that name one."""
        named = train[train["mask"].notna()]
        failures = warm_cache(self.mask_cache, named.assign(path=named["mask"]),  # type: ignore[arg-type]
                              self.cache_workers, "caching masks")
        if failures:
            shown = "\n  ".join(error for _, error in failures[:10])
            raise DataError(f"{len(failures)} unreadable mask(s):\n  {shown}")
        return named

    def _check_trained_classes_present(self) -> None:
        counts = np.bincount(self.train_frame["code"], minlength=len(self.classes))
        empty = [self.classes.names[c] for c in self.classes.trained_codes if counts[c] == 0]
        if empty:
            raise DataError(f"class(es) {empty} have no usable training images")

    def write_skipped(self, folder: Path) -> Path | None:
        """``folder/skipped.csv``: the images ``data.on_bad_image=skip`` left out, and why
        (in the run's folder: the cache is shared by runs); ``None`` when none was."""
        skipped = self._require_setup().skipped
        if not skipped:
            return None
        path = Path(folder) / "skipped.csv"
        write_csv_atomic(pd.DataFrame(skipped, columns=["path", "reason"]), path, index=False)
        log.warning("%d image(s) skipped; list written to %s", len(skipped), path)
        return path

    # -- properties ---------------------------------------------------------------------------
    def _require_setup(self) -> DataIndex:
        if self.index is None:
            raise RuntimeError("call setup() first")
        return self.index

    @property
    def classes(self) -> ClassSet:
        return self._require_setup().classes

    @property
    def num_classes(self) -> int:
        """Number of classifier outputs: the trained classes (open-set label excluded)."""
        return len(self.classes.trained_codes)

    @property
    def in_channels(self) -> int:
        return self.preprocess.channels

    def class_counts(self) -> pd.DataFrame:
        """Images per class and split (columns train, val, test)."""
        index = self._require_setup()
        frames = {"train": self.train_frame, "val": self.val_frame, "test": self.test_frame}
        table = pd.DataFrame({name: index.counts(frame) for name, frame in frames.items()},
                             index=list(index.classes.names))
        table.index.name = "class"
        return table

    # -- loaders ------------------------------------------------------------------------------
    def _dataset(self, frame: pd.DataFrame | None, train: bool) -> ImageDataset:
        if frame is None or len(frame) == 0:
            raise DataError("no images for this stage (check the data set's test split / CSV)")
        if train and self.mask_cache is not None:
            good = self.classes.good_code
            return ImageDataset(frame, self.cache, self.train_transform,
                                mask_cache=self.mask_cache,
                                clean_codes=frozenset() if good is None else frozenset({good}))
        return ImageDataset(frame, self.cache,
                            self.train_transform if train else self.eval_transform)

    def _loader(self, dataset: ImageDataset, shuffle: bool, sampler: Any = None) -> DataLoader:
        # A loader of its own generator: starting an epoch's iterator (which draws the
        # workers' base seed) leaves the global random state, reseeded per epoch, alone.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, drop_last=False,
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        """Training batches drawn by an ``EpochSampler``: order, class balance and augmentations
        of epoch ``e`` follow from ``(seed, e)`` alone, so a resumed run sees the same batches as
        an uninterrupted one, whatever ``num_workers``."""
        dataset = self._dataset(self.train_frame, train=True)
        power = BALANCE_POWERS[self.balanced]
        weights = balanced_weights(dataset.codes, power) if power else None
        sampler = EpochSampler(len(dataset), self.seed, weights, epoch=self._next_epoch(),
                               seeds=True)
        return self._loader(dataset, shuffle=False, sampler=sampler)

    def _next_epoch(self) -> int:
        """The epoch the trainer starts next: the number it will pass to ``set_epoch``.

        Worker processes draw their first batches when the loader's iterator is made, before
        Lightning calls ``set_epoch``, so a resumed run's loader must start at the right epoch.
        ``current_epoch`` is not it: restored from an end-of-epoch checkpoint it still reads the
        finished epoch until the loop has started.
        """
        trainer = self.trainer
        if trainer is None:
            return 0
        progress = getattr(getattr(trainer, "fit_loop", None), "epoch_progress", None)
        if progress is not None:
            return int(progress.current.processed)
        return int(trainer.current_epoch)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.val_frame, train=False), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.test_frame, train=False), shuffle=False)

    def cache_dir(self) -> Path:
        return self.cache.root
