"""Data pipeline: decoding + rotating + cropping every image vs reading the cache, and the
share of a training step spent waiting for data.

The data set is vqc's synthetic one in the challenge's layout (PNG die images of about
1000x1000 px, rotated and cropped by die as the official preprocessing does), generated once
under ``data/bench/``. Both epoch timings read files the operating system has already cached,
so they compare the work done, not the disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.common import (
    ROOT,
    Result,
    arguments,
    log,
    measure_side_by_side,
    per_item,
    ratio,
    stat,
    synchronize,
)
from vqc.config import compose
from vqc.data.build import build_datamodule
from vqc.data.datamodule import VqcDataModule
from vqc.models import build_model

DATA = ROOT / "data" / "bench"


def datamodule(n_train: int, cache: Path) -> VqcDataModule:
    """The demo data configuration (224x64 strips, augmentations, balanced sampling)."""
    cfg = compose("train", [
        "data=demo", f"data.root={DATA / f'synthetic-{n_train}'}",
        f"data.generate.n_train={n_train}", "data.generate.n_test=20",
    ])
    module = build_datamodule(cfg.data, str(cache), seed=0)
    module.prepare_data()
    module.setup("fit")
    return module


def epoch_times(module: VqcDataModule, repeats: int) -> dict[str, Any]:
    """Preprocessing every training image from its PNG vs reading it from the cache."""
    frame = module.train_frame
    items = list(zip(frame["path"], frame["lib"], strict=True))
    preprocess, cache = module.preprocess, module.cache

    def decode() -> None:
        for path, lib in items:
            preprocess(path, lib)

    def read_cache() -> None:
        for path, lib in items:
            cache.get(path, lib)

    times = measure_side_by_side({"decode": decode, "cache": read_cache}, repeats=repeats)
    return {"images": len(items), "decode_s": times["decode"], "cache_s": times["cache"],
            "decode_img_s": per_item(times["decode"], len(items)),
            "cache_img_s": per_item(times["cache"], len(items)),
            "cache_speedup": ratio(times["decode"], times["cache"])}


def wait_share(module: VqcDataModule, device: str, steps: int, skip: int = 3) -> dict[str, Any]:
    """Share of each training step spent in ``next(loader)``: the demo CNN, batch 32.

    The first ``skip`` steps (worker start-up, first allocations) are left out.
    """
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=module.num_classes, in_channels=1, depth=5,
                        width=32).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = module.train_dataloader()
    waits, totals = [], []
    iterator = iter(loader)
    for i in range(steps + skip):
        start = time.perf_counter()
        try:
            images, target = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            images, target = next(iterator)
        fetched = time.perf_counter()
        images, target = images.to(device, non_blocking=True), target.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), target).backward()
        optimizer.step()
        synchronize(device)
        if i >= skip:
            waits.append(fetched - start)
            totals.append(time.perf_counter() - start)
    del iterator
    return {"workers": module.num_workers, "steps": steps,
            "wait_s": stat(waits), "step_s": stat(totals),
            "wait_share": sum(waits) / sum(totals)}


def run(quick: bool, device: str = "cpu") -> Result:
    n_train = 300 if quick else 1500
    cache = DATA / "cache"
    log(f"synthetic challenge set of {n_train} training images (generated once)")
    module = datamodule(n_train, cache)
    figures: dict[str, Any] = {"epoch": epoch_times(module, 2 if quick else 3)}
    log(f"cache read {figures['epoch']['cache_speedup']['median']:.1f}x faster than decoding")
    shares = []
    workers = (0, 2) if not device.startswith("cuda") else (0, 2, 8)
    for n in workers:
        module.num_workers = n  # the loaders are made per call: same data, other workers
        shares.append(wait_share(module, device, 15 if quick else 60))
        log(f"{n} workers: {shares[-1]['wait_share']:.1%} of a step waiting for data")
    figures["wait"] = shares
    result = Result("data", figures, quick, device=device)
    log(f"wrote {result.save()}")
    return result


def main() -> None:
    args = arguments(__doc__).parse_args()
    run(args.quick, args.device)


if __name__ == "__main__":
    main()
