"""Seeded, stratified train/validation split that keeps rare classes in validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from vqc.errors import ConfigError


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int,
                     groups: Sequence[object] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``.

    Without groups every class with at least two images puts ``max(1, round(n * f))`` of them
    into validation (so a class of 5 still appears there) and keeps at least one for training.
    With groups (e.g. the die), whole groups go to one side, chosen by scikit-learn's
    ``StratifiedGroupKFold`` with ``round(1 / f)`` folds so class proportions stay close.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction}: expected 0 <= value < 1")
    labels = np.asarray(labels)
    if val_fraction == 0.0 or len(labels) == 0:
        return np.arange(len(labels)), np.array([], dtype=int)
    if groups is not None:
        return _group_split(labels, np.asarray(groups, dtype=object), val_fraction, seed)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) < 2:
            continue
        n_val = min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        val.append(members[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=int)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _group_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_groups = len(set(groups.tolist()))
    n_splits = max(2, round(1 / val_fraction))
    if n_groups < 2:
        raise ConfigError(f"data.group_by: only {n_groups} group(s); cannot split by group")
    n_splits = min(n_splits, n_groups)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    codes = np.unique(groups.astype(str), return_inverse=True)[1]
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, codes))
    return np.sort(train_idx), np.sort(val_idx)
