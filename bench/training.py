"""Training speed: Lightning's overhead over a plain loop, and images per second by model.

* **Overhead**: vqc's :class:`~vqc.training.module.ClassifierModule` run by a Lightning
  ``Trainer`` against a plain PyTorch loop with the same model, optimiser, loss, batches and
  initial weights. Each step's time is the gap between consecutive step ends, so data fetching,
  logging and the optimiser step all count; rounds alternate between the two.
* **Throughput**: training steps (forward, backward, AdamW step) per second on in-memory batches
  for the 5-block CNN, ResNet-18 and ResNet-50 at 128 and 224 px, in float32 and bfloat16
  autocast, with and without ``channels_last``.
"""

from __future__ import annotations

import copy
import time
from functools import partial
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from bench.common import Result, arguments, log, per_item, ratio, stat, synchronize
from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.models import build_model

CLASSES = list(CHALLENGE_CLASS_NAMES)
MODELS = {"CNN, 5 blocks": {"name": "cnn", "depth": 5, "width": 32},
          "ResNet-18": {"name": "resnet18"}, "ResNet-50": {"name": "resnet50"}}
SIZES = (128, 224)
VARIANTS = {"fp32": (False, False), "channels_last": (True, False), "bf16": (False, True),
            "channels_last+bf16": (True, True)}


def make_model(spec: dict[str, Any], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(num_classes=6, in_channels=1, **spec)


def random_batches(n: int, batch: int, size: tuple[int, int], seed: int = 0
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 1, *size, generator=generator),
             torch.randint(0, 6, (batch,), generator=generator)) for _ in range(n)]


# -- plain loop vs Lightning -------------------------------------------------------------------
def plain_step_times(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                     device: str) -> list[float]:
    """Seconds between consecutive step ends of a plain loop (the first step is not counted)."""
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    ends = []
    for images, target in batches:
        images, target = images.to(device), target.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), target)
        loss.backward()
        optimizer.step()
        synchronize(device)
        ends.append(time.perf_counter())
    return [b - a for a, b in pairwise(ends)]


def lightning_step_times(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                         device: str) -> list[float]:
    """The same steps run by vqc's ``ClassifierModule`` in a Lightning ``Trainer``."""
    import logging

    import lightning as L

    from vqc.classes import ClassSet
    from vqc.metrics import official_cost_matrix
    from vqc.training.module import ClassifierModule

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    ends: list[float] = []

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            synchronize(device)
            ends.append(time.perf_counter())

    module = ClassifierModule(model, ClassSet(tuple(CLASSES), open_set="Drift", good="GOOD"),
                              official_cost_matrix(), nn.CrossEntropyLoss(),
                              partial(torch.optim.AdamW, lr=1e-3))
    trainer = L.Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                        max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[StepClock()])
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return [b - a for a, b in pairwise(ends)]


def overhead(quick: bool, device: str, label: str, size: tuple[int, int]) -> dict[str, Any]:
    """Median step time of the plain loop and of Lightning, ``repeats`` alternating runs."""
    cuda = device.startswith("cuda")
    steps = (10 if quick else 30) if not cuda else (50 if quick else 200)
    repeats = 3 if quick else 5
    batches = random_batches(steps + 1, 32, size)
    initial = make_model(MODELS[label])
    plain_runs, lightning_runs = [], []
    lightning_step_times(copy.deepcopy(initial), batches[:5], device)  # warm-up both paths
    plain_step_times(copy.deepcopy(initial), batches[:5], device)
    for _ in range(repeats):
        plain_runs.append(float(torch.tensor(plain_step_times(
            copy.deepcopy(initial), batches, device)).median()))
        lightning_runs.append(float(torch.tensor(lightning_step_times(
            copy.deepcopy(initial), batches, device)).median()))
    plain, lightning = stat(plain_runs), stat(lightning_runs)
    return {"model": label, "size": list(size), "batch": 32, "steps": steps,
            "plain_step_s": plain, "lightning_step_s": lightning,
            "lightning_over_plain": ratio(lightning, plain)}


# -- throughput --------------------------------------------------------------------------------
def step_rate(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: str,
              channels_last: bool, bf16: bool, steps: int, repeats: int) -> dict[str, Any]:
    """Seconds per training step, ``repeats`` timings of ``steps`` steps after one warm-up."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    images = batch[0].to(device).contiguous(memory_format=memory_format)
    target = batch[1].to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images), target)
        loss.backward()
        optimizer.step()

    runs = []
    for i in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        if i:  # the first round warms up (allocations, kernel choice)
            runs.append((time.perf_counter() - start) / steps)
    return stat(runs)


def throughput(quick: bool, device: str) -> list[dict[str, Any]]:
    cuda = device.startswith("cuda")
    batch_size = 32 if (cuda or not quick) else 8
    steps, repeats = (10, 5) if cuda else (1, 2 if quick else 3)
    rows = []
    for label, spec in MODELS.items():
        for size in SIZES:
            batch = random_batches(1, batch_size, (size, size))[0]
            row: dict[str, Any] = {"model": label, "size": size, "batch": batch_size}
            for variant, (channels_last, bf16) in VARIANTS.items():
                seconds = step_rate(make_model(spec), batch, device, channels_last, bf16,
                                    steps, repeats)
                row[variant] = per_item(seconds, batch_size)
            row["best_over_fp32"] = max(
                row[v]["median"] for v in VARIANTS) / row["fp32"]["median"]
            log(f"{label} {size}px: " + ", ".join(
                f"{v} {row[v]['median']:.1f} img/s" for v in VARIANTS))
            rows.append(row)
    return rows


def run(quick: bool, device: str = "cpu") -> Result:
    cases = [("CNN, 5 blocks", (224, 64))]
    if device.startswith("cuda"):  # a GPU step is short: a larger model shows the other end
        cases.append(("ResNet-50", (224, 224)))
    figures: dict[str, Any] = {"overhead": []}
    for label, size in cases:
        log(f"Lightning vs plain loop: {label} {size[0]}x{size[1]}")
        figures["overhead"].append(overhead(quick, device, label, size))
        log(f"overhead {figures['overhead'][-1]['lightning_over_plain']['median']:.3f}x")
    figures["throughput"] = throughput(quick, device)
    result = Result("training", figures, quick, device=device)
    log(f"wrote {result.save()}")
    return result


def main() -> None:
    args = arguments(__doc__).parse_args()
    run(args.quick, args.device)


if __name__ == "__main__":
    main()
