"""Inspection throughput: preprocessed images in, decisions out, batch 32.

For each vqc inspector (classifier + PaDiM on its own feature maps + least-cost decision) it
times, interleaved in one loop so that a shared machine's load falls on all alike:

* the bare classifier forward (the floor any inspector pays),
* the whole :class:`~vqc.inspection.inspector.Inspector` (normalisation, one backbone pass,
  drift scores, calibrated probabilities, decision),
* the same inspector exported to ONNX and run by ONNX Runtime (CPU only),
* the official two-network pipeline (:mod:`bench.official`: ``resnest50d`` at 224 px plus
  PaDiM on ``wide_resnet50_2`` at 128 px) on the same images.

Weights are random: throughput does not depend on their values.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import Result, arguments, log, measure_side_by_side, per_item, ratio
from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.drift import DriftThreshold, build_ensemble, forward_outputs
from vqc.inspection.inspector import Inspector, InspectorSpec, shared_drift_detector
from vqc.metrics import official_cost_matrix
from vqc.models import build_model, ensemble_of

CLASSES = list(CHALLENGE_CLASS_NAMES)
#: The challenge's strips after the official rotate+crop, at vqc's default size (height, width).
STRIP = (224, 64)
BATCH = 32


@dataclass(frozen=True)
class InspectorCase:
    """A vqc inspector configuration to time."""

    label: str
    model: dict[str, Any]
    drift_layers: tuple[str, ...]
    n_features: int = 100
    #: PaDiM plus the pooled Gaussian for drift and a GOOD-only pooled Gaussian as the defect
    #: gate (``drift=padim_pooled_gate``), instead of PaDiM alone.
    pooled_and_gate: bool = False
    #: Only the pooled Gaussian and the gate (``drift=pooled_gate``): no PaDiM.
    pooled_only: bool = False
    #: Networks answering as one (``ensemble=N``).
    members: int = 1
    #: The pooled drift detector reads this layer's channel statistics (``drift=stats_gate``).
    stats_layer: str | None = None


CASES = (
    InspectorCase("CNN, 5 blocks", {"name": "cnn", "depth": 5, "width": 32},
                  ("block2", "block3", "block4")),
    InspectorCase("ResNet-18", {"name": "resnet18"}, ("layer1", "layer2", "layer3")),
    InspectorCase("ResNet-50", {"name": "resnet50"}, ("layer1", "layer2", "layer3")),
    InspectorCase("EfficientNet-Lite0, PaDiM + pooled + quality + gate (the demo's)",
                  {"name": "efficientnet_lite0", "pretrained": False},
                  ("stage1", "stage2", "stage4"), pooled_and_gate=True),
    InspectorCase("EfficientNet-Lite1, stage2 statistics + gate (the default recipe)",
                  {"name": "efficientnet_lite1", "pretrained": False}, (),
                  pooled_and_gate=True, pooled_only=True, stats_layer="stage2"),
    InspectorCase("EfficientNet-Lite0 x2 (ensemble=2), pooled + gate",
                  {"name": "efficientnet_lite0", "pretrained": False}, (),
                  pooled_and_gate=True, pooled_only=True, members=2),
)


def build_inspector(case: InspectorCase, size: tuple[int, int] = STRIP, fit_images: int = 64,
                    device: str = "cpu", seed: int = 0) -> Inspector:
    """A random-weight inspector with its detectors fitted on random strips."""
    torch.manual_seed(seed)
    model_args = {"num_classes": 6, "in_channels": 1, "dropout": 0.0, **case.model}
    classifier = ensemble_of([build_model(**model_args) for _ in range(case.members)]).eval()
    model_args.pop("pretrained", None)  # the spec's model: what rebuilds the network
    if case.members > 1:
        model_args["members"] = case.members
    spec = InspectorSpec(class_names=CLASSES, open_set="Drift", good="GOOD", model=model_args,
                         preprocess={"size": list(size), "mode": "L", "rotate_crop": {}},
                         decision="bayes", cost_matrix=official_cost_matrix().tolist())
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(fit_images, 1, *size, generator=generator)
    codes = torch.zeros(fit_images, dtype=torch.long)
    if case.pooled_and_gate:
        padim = {"padim": ("padim", {"layers": list(case.drift_layers),
                                     "n_features": case.n_features, "pool": 4}),
                 "quality": ("image_quality", {})}
        drift = build_ensemble(
            {**({} if case.pooled_only else padim),
             "pooled": ("pooled", {"layer": case.stats_layer}),
             "good_gate": ("pooled", {"fit_on": "good"})},
            classifier, roles={"good_gate": "defect"})
        batches = [(forward_outputs(classifier, images[i:i + BATCH], drift.layers),
                    codes[i:i + BATCH], None) for i in range(0, fit_images, BATCH)]
        drift.fit(batches)
        drift.calibrate(batches, target_rate=0.05, good_code=0)
    else:
        drift = shared_drift_detector(classifier, layers=case.drift_layers,
                                      n_features=case.n_features)
        drift.fit([(images[i:i + BATCH], codes[i:i + BATCH])
                   for i in range(0, fit_images, BATCH)])
        scores = drift.score(images)
        drift.threshold = DriftThreshold(threshold=float(scores.max()))
    inspector = Inspector(classifier, spec, drift).to(device)
    drift.to(device)
    return inspector


def contenders(case: InspectorCase, batch: torch.Tensor, device: str, onnx_dir: Path | None
               ) -> dict[str, Callable[[], Any]]:
    """The functions timed for one inspector: bare forward, inspector, ONNX Runtime."""
    inspector = build_inspector(case, device=device)
    classifier = inspector.classifier

    def bare() -> torch.Tensor:
        with torch.inference_mode():
            return classifier(inspector.normalise(batch).to(device))

    def whole() -> Any:
        return inspector(inspector.normalise(batch))

    fns: dict[str, Callable[[], Any]] = {"bare": bare, "inspector": whole}
    if onnx_dir is not None:
        from vqc.export import OnnxInspector, export_onnx

        path = export_onnx(inspector, onnx_dir / f"{case.model['name']}x{case.members}.onnx")
        runtime = OnnxInspector(path)
        fns["onnx"] = lambda: runtime(runtime.normalise(batch))
    return fns


def run(quick: bool, device: str = "cpu") -> Result:
    """Time every case and the official pipeline side by side; save and return the result."""
    from bench.official import build_official

    cuda = torch.device(device).type == "cuda"
    repeats = (3 if quick else 7) if not cuda else (10 if quick else 30)
    warmup = 1 if not cuda else 5
    generator = torch.Generator().manual_seed(1)
    batch = torch.randint(0, 256, (BATCH, 1, *STRIP), generator=generator, dtype=torch.uint8)
    fns: dict[str, Callable[[], Any]] = {}
    log("building the official pipeline (resnest50d + wide_resnet50_2 PaDiM)")
    official = build_official(device=device)
    fns["official"] = lambda: official(batch.to(device).float() / 255)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            log(f"building the {case.label} inspector")
            for name, fn in contenders(case, batch, device, None if cuda else Path(tmp)).items():
                fns[f"{case.label}|{name}"] = fn
        log(f"timing {len(fns)} functions x {repeats} rounds, batch {BATCH}")
        times = measure_side_by_side(fns, repeats=repeats, warmup=warmup, device=device)
    rows = []
    for case in CASES:
        bare, whole = times[f"{case.label}|bare"], times[f"{case.label}|inspector"]
        row = {"model": case.label, "drift_layers": list(case.drift_layers),
               "n_features": case.n_features,
               "bare_img_s": per_item(bare, BATCH), "inspector_img_s": per_item(whole, BATCH),
               "drift_overhead": ratio(whole, bare),
               "speedup_vs_official": ratio(times["official"], whole)}
        if f"{case.label}|onnx" in times:
            onnx = times[f"{case.label}|onnx"]
            row["onnx_img_s"] = per_item(onnx, BATCH)
            row["onnx_speedup"] = ratio(whole, onnx)
        rows.append(row)
    figures = {"batch": BATCH, "size": list(STRIP), "repeats": repeats,
               "official_img_s": per_item(times["official"], BATCH), "inspectors": rows}
    result = Result("inspection", figures, quick, device=device)
    log(f"wrote {result.save()}")
    return result


def main() -> None:
    args = arguments(__doc__).parse_args()
    run(args.quick, args.device)


if __name__ == "__main__":
    main()
