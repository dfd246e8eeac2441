"""PaDiM fitting time and peak memory against the number of training images.

Two fits of the same PaDiM: a random-init ``wide_resnet50_2`` (timm, through anomalib's
``PadimModel``), layers ``layer1..layer3``, the same 550 of 1792 channels, 128x128 random
images in batches of 32:

- ``stream``: :meth:`vqc.drift.PadimDetector.fit`, which folds each batch into a running mean
  and scatter matrix per position, so its memory does not depend on the number of images;
- ``stacking``: anomalib's own path without Lightning: ``PadimModel`` in training mode keeps
  every batch's embedding, ``PadimModel.fit`` stacks them (``torch.vstack``) and fits its
  ``MultiVariateGaussian`` (one covariance per position in a Python loop, then a batched
  ``torch.linalg.inv``). The stacked embeddings take ``550 * 32 * 32`` float32 per image
  (2.2 MiB; twice that while ``vstack`` copies them), on top of about 4.6 GiB of per-position
  550x550 matrices (covariance, its regularised copy, the inverse and its workspace), so its
  peak grows linearly with the images. Streaming holds a float64 scatter matrix per position
  (2.3 GiB) and the float32 inverse, whatever the number of images.

Why: the training set of a drift detector is every known-class image; whether fitting it fits
in memory, and how long it takes, decides how many images can be used.

Every point (method, number of images) runs in a fresh subprocess, so the peak resident size
it reports (``ru_maxrss``, the process's high-water mark) belongs to that fit alone; the
baseline is the resident size once the model is built, and the time covers the backbone
forward and the fit, not the model's construction. Points are run alternately (round i runs
every method once). A stacking point whose peak, extrapolated linearly from the points
already measured, would exceed :data:`LIMIT_GIB` is skipped instead of run, as is any point
after a method timed out or failed.

The batched ``torch.linalg.inv`` anomalib calls hangs on this project's CPUs when torch uses
several threads (matrices of about 200x200 and larger), so that call alone runs on one
thread; the rest of anomalib's fit uses the default thread count, as vqc's does.

``python -m bench.padim_fit [--quick]``; one point: ``python -m bench.padim_fit --one
--method stream --images 500``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from bench.common import ROOT, Result, arguments, log, stat, time_once

SECTION = "padim_fit"
BACKBONE = "wide_resnet50_2"
LAYERS = ("layer1", "layer2", "layer3")
IMAGE_SIZE = 128
N_FEATURES = 550
BATCH = 32
#: Seed of the channel subset (``DriftConfig``'s default), given to both methods.
CHANNEL_SEED = 1024
#: Seed of the backbone's random weights (the same weights for both methods).
WEIGHTS_SEED = 0
IMAGES_SEED = 1
#: anomalib adds 0.01 then 1e-5 to the covariance diagonal; the detector gets the same.
EPS = 0.01 + 1e-5
METHODS = ("stream", "stacking")
FULL_SIZES = (64, 250, 500, 1000, 2000)
QUICK_SIZES = (32, 64)
#: A point predicted to peak above this many GiB is skipped (the machine has 24 GiB).
LIMIT_GIB = 18.0
GIB = 2**30
#: Keys of the JSON line a one-point subprocess prints.
POINT_KEYS = ("method", "images", "seconds", "baseline_gib", "peak_gib", "delta_gib")


def embedding_gib(images: int) -> float:
    """Size of ``images`` stacked embeddings ``(N, 550, 32, 32)`` float32, in GiB."""
    side = IMAGE_SIZE // 4  # layer1 of a ResNet: stride 4
    return images * N_FEATURES * side * side * 4 / GIB


#: GiB per image assumed when only one point of a method is known: stacking holds the list of
#: batch embeddings and their stacked copy at once (an upper bound: below about 2000 images
#: its peak is at the inversion, where one copy is left); streaming holds nothing per image.
FALLBACK_SLOPE_GIB = {"stream": 0.0, "stacking": 2 * embedding_gib(1)}


def repeats_for(images: int, quick: bool) -> int:
    if quick:
        return 2
    return 3 if images <= 500 else 2


def timeout_for(images: int) -> float:
    """Seconds a one-point subprocess may run (build, forward and fit; a loaded machine)."""
    return 600.0 + 1.0 * images


# -- out-of-memory guard ----------------------------------------------------------------------
def predict_peak(measured: Sequence[tuple[int, float]], images: int,
                 fallback_slope: float) -> float | None:
    """Peak GiB at ``images``, extrapolated from measured ``(images, peak GiB)`` points.

    Two or more distinct sizes: the least-squares line through them (slope at least 0). One
    size: its (largest) peak plus ``fallback_slope`` GiB per extra image. None: ``None``.
    """
    if not measured:
        return None
    sizes = {n for n, _ in measured}
    if len(sizes) == 1:
        n0 = measured[0][0]
        return max(p for _, p in measured) + fallback_slope * (images - n0)
    count = len(measured)
    mean_n = sum(n for n, _ in measured) / count
    mean_p = sum(p for _, p in measured) / count
    covariance = sum((n - mean_n) * (p - mean_p) for n, p in measured)
    variance = sum((n - mean_n) ** 2 for n, _ in measured)
    slope = max(0.0, covariance / variance)
    return mean_p + slope * (images - mean_n)


def oom_skip(measured: Sequence[tuple[int, float]], images: int, fallback_slope: float,
             limit_gib: float = LIMIT_GIB) -> str | None:
    """Why the point should not run (its predicted peak is above ``limit_gib``), or ``None``."""
    predicted = predict_peak(measured, images, fallback_slope)
    if predicted is None or predicted <= limit_gib:
        return None
    return (f"predicted peak {predicted:.1f} GiB above the {limit_gib:g} GiB limit "
            "(linear in images from the smaller points)")


# -- one point, in its own process ------------------------------------------------------------
def rss_gib() -> float:
    """Current resident size (``VmRSS``) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_gib() -> float:
    """Highest resident size of this process so far (``ru_maxrss``, KiB on Linux) in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def batches(images: int, device: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, codes)`` batches of seeded random RGB images, all of code 0."""
    generator = torch.Generator().manual_seed(IMAGES_SEED)
    for start in range(0, images, BATCH):
        n = min(BATCH, images - start)
        x = torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
        yield x.to(device), torch.zeros(n, dtype=torch.int64)


@contextmanager
def single_threaded_inverse() -> Iterator[None]:
    """Run every ``torch.linalg.inv`` call of the block on one thread (it hangs on several)."""
    from vqc.drift import limit_threads

    inverse = torch.linalg.inv

    def inv(*args: Any, **kwargs: Any) -> torch.Tensor:
        with limit_threads(1):
            return inverse(*args, **kwargs)

    with mock.patch.object(torch.linalg, "inv", inv):
        yield


def build_fit(method: str, images: int, device: str) -> Callable[[], None]:
    """Build the model of ``method``; return the fit to time."""
    from anomalib.models.image.padim.torch_model import PadimModel

    from vqc.drift import PadimDetector, PadimFeatures, select_channels

    torch.manual_seed(WEIGHTS_SEED)  # the same random backbone for both methods
    if method == "stream":
        source = PadimFeatures.create(BACKBONE, LAYERS, pre_trained=False, n_features=N_FEATURES)
        source.model.to(device)
        detector = PadimDetector(source, n_features=N_FEATURES, seed=CHANNEL_SEED, eps=EPS)

        def fit_stream() -> None:
            detector.fit(batches(images, device))

        return fit_stream
    if method == "stacking":
        model = PadimModel(backbone=BACKBONE, layers=list(LAYERS), pre_trained=False,
                           n_features=N_FEATURES)
        # The detector's channel subset (anomalib draws its own from the global generator).
        model.idx = select_channels(model.n_features_original, N_FEATURES, CHANNEL_SEED)
        model.to(device).train()

        def fit_stacking() -> None:
            for x, _ in batches(images, device):
                model(x)  # training mode: appends the embedding to model.memory_bank
            with single_threaded_inverse():
                model.fit()  # torch.vstack(memory_bank), gaussian.fit, memory_bank = []

        return fit_stacking
    raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")


def measure_point(method: str, images: int, device: str = "cpu") -> dict[str, Any]:
    """Build, record the baseline, time the fit and read the peak: one point's figures."""
    fit = build_fit(method, images, device)
    baseline = rss_gib()
    seconds = time_once(fit, device)
    peak = peak_rss_gib()
    return {"method": method, "images": images, "seconds": seconds, "baseline_gib": baseline,
            "peak_gib": peak, "delta_gib": peak - baseline, "threads": torch.get_num_threads()}


def parse_point(stdout: str) -> dict[str, Any]:
    """The figures of a one-point subprocess: the last JSON line of its output."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        missing = [key for key in POINT_KEYS if key not in point]
        if missing:
            raise ValueError(f"the point's JSON line lacks {missing}: {line}")
        return point
    raise ValueError("no JSON line in the output of the point's process")


class PointFailed(RuntimeError):
    """A one-point subprocess timed out, failed or printed no figures."""


def run_point(method: str, images: int, device: str, timeout: float) -> dict[str, Any]:
    """Run one point in a fresh ``python -m bench.padim_fit --one`` process."""
    command = [sys.executable, "-m", "bench.padim_fit", "--one", "--method", method,
               "--images", str(images), "--device", device]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise PointFailed(f"timeout: still running after {timeout:.0f} s") from error
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no error output)"])[-1]
        killed = " (killed: out of memory?)" if done.returncode == -9 else ""
        raise PointFailed(f"exit code {done.returncode}{killed} after "
                          f"{time.perf_counter() - start:.0f} s: {tail[-200:]}")
    try:
        return parse_point(done.stdout)
    except ValueError as error:
        raise PointFailed(str(error)) from error


def point_figures(method: str, images: int, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One entry of ``points`` from the runs of one (method, images)."""
    return {
        "method": method,
        "images": images,
        "seconds": stat([r["seconds"] for r in runs]),
        "peak_gib": stat([r["peak_gib"] for r in runs], "GiB"),
        "delta_gib": stat([r["delta_gib"] for r in runs], "GiB"),
    }


# -- the benchmark ----------------------------------------------------------------------------
def run(quick: bool, device: str = "cpu", limit_gib: float = LIMIT_GIB) -> Result:
    """Every (method, images) point, ``repeats_for`` runs each; figures saved as ``padim_fit``."""
    device = device if torch.device(device).type == "cuda" else "cpu"
    sizes = QUICK_SIZES if quick else FULL_SIZES
    measured: dict[str, list[tuple[int, float]]] = {m: [] for m in METHODS}
    stopped: dict[str, str] = {}  # method -> why its larger points are not run
    points: list[dict[str, Any]] = []
    for images in sizes:
        repeats = repeats_for(images, quick)
        skipped: dict[str, str] = {}
        for method in METHODS:
            reason = stopped.get(method) or oom_skip(measured[method], images,
                                                     FALLBACK_SLOPE_GIB[method], limit_gib)
            if reason:
                skipped[method] = reason
                log(f"padim_fit {method} {images} images: skipped, {reason}")
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
        for repeat in range(repeats):
            for method in METHODS:
                if method in skipped:
                    continue
                try:
                    point = run_point(method, images, device, timeout_for(images))
                except PointFailed as error:
                    skipped[method] = str(error)
                    stopped[method] = f"{method} failed at {images} images: {error}"
                    log(f"padim_fit {method} {images} images: {error}")
                    continue
                runs[method].append(point)
                log(f"padim_fit {method} {images} images, run {repeat + 1}/{repeats}: "
                    f"{point['seconds']:.1f} s, peak {point['peak_gib']:.2f} GiB "
                    f"(+{point['delta_gib']:.2f} over {point['baseline_gib']:.2f})")
        for method in METHODS:
            if method in skipped:
                points.append({"method": method, "images": images, "skipped": skipped[method]})
                continue
            points.append(point_figures(method, images, runs[method]))
            measured[method].append((images, max(r["peak_gib"] for r in runs[method])))
    figures = {"backbone": BACKBONE, "image_size": IMAGE_SIZE, "n_features": N_FEATURES,
               "batch": BATCH, "points": points}
    result = Result(section=SECTION, figures=figures, quick=quick, device=device)
    path = result.save()
    log(f"padim_fit: wrote {path}")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--limit-gib", type=float, default=LIMIT_GIB,
                        help="skip points predicted to peak above this")
    parser.add_argument("--one", action="store_true",
                        help="measure one point here and print it as a JSON line")
    parser.add_argument("--method", choices=METHODS, default="stream")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args(argv)
    if args.one:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(json.dumps(measure_point(args.method, args.images, args.device)), flush=True)
        return
    run(args.quick, args.device, args.limit_gib)


if __name__ == "__main__":
    main()
