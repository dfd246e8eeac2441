"""``vqc-export``: an inspector artifact -> one ONNX model, checked against PyTorch.

The check runs ONNX Runtime and PyTorch on a few images (from ``--check-images``, else random
images of the model's input shape) and prints the largest differences of the logits,
probabilities and drift scores; decisions must be identical. A failed check exits with 1 and
leaves the exported file in place for inspection.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.console import Console

from vqc.errors import DataError, VqcError
from vqc.interrupts import Interrupted, handle_signals, interruptible
from vqc.io import folder_problem

if TYPE_CHECKING:
    from vqc.inspection.inspector import Inspector

PROG = "vqc-export"
console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--inspector", required=True, type=Path,
                        help="inspector.safetensors written by training")
    parser.add_argument("--out", required=True, type=Path, help="ONNX model to write")
    parser.add_argument("--check-images", type=Path, default=None,
                        help="folder of images for the parity check (default: random images)")
    parser.add_argument("--check-index", type=Path, default=None,
                        help="CSV listing filename, window, lib of --check-images (needed when "
                             "images are rotated and cropped by lib)")
    parser.add_argument("--check-count", type=int, default=8,
                        help="images for the parity check (default 8)")
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the "
                                                                "exporter's)")
    parser.add_argument("--static-batch", type=int, default=None, metavar="N",
                        help="fix the batch size to N (default: a dynamic batch dimension)")
    return parser


def check_inputs(inspector: Inspector, folder: Path | None, index: Path | None, count: int,
                 keys: Sequence[str]) -> tuple[torch.Tensor, list[str | None] | None]:
    """Normalised images and libs for the check: files from ``folder``, else random images
    whose libs cycle through the per-lib Gaussians ``keys`` and one unknown lib."""
    if count < 1:
        raise DataError(f"--check-count must be >= 1, got {count}")
    if folder is None and index is None:
        generator = torch.Generator().manual_seed(0)
        channels = int(inspector.classifier.in_channels)
        height, width = (int(s) for s in inspector.spec.preprocess["size"])
        images = torch.randint(0, 256, (count, channels, height, width), dtype=torch.uint8,
                               generator=generator)
        names: list[str | None] = [*keys[1:], None]
        libs = [names[i % len(names)] for i in range(count)] if len(names) > 1 else None
        return inspector.normalise(images), libs
    from vqc.cli.predict_files import read_index

    rows = read_index(folder or index.parent, index).head(count)
    libs = [lib or None for lib in rows["lib"]]
    arrays = [inspector.preprocessor(path, lib) for path, lib in zip(rows["path"], libs,
                                                                      strict=True)]
    images = inspector.normalise(torch.from_numpy(np.stack(arrays)))
    return images, (libs if any(libs) else None)


def out_folder(out: Path) -> None:
    """Raise ``DataError`` when the folder of ``--out`` cannot be created or written to."""
    problem = folder_problem(out.parent)
    if problem:
        raise DataError(f"--out {out}: cannot create its folder: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with handle_signals():
        try:
            with interruptible("the export"):
                return _export(args)
        except Interrupted as stop:
            print(f"{PROG}: {stop}; no file is left half-written: the same command starts it again",
                  file=sys.stderr)
            return stop.exit_code


def _export(args: argparse.Namespace) -> int:
    try:
        from vqc.export.onnx import check_parity, export_onnx, gaussian_order
        from vqc.inspection.inspector import Inspector

        out_folder(args.out)
        inspector = Inspector.load(args.inspector)
        # the check images are read first: a bad one stops the run before anything is written
        keys = gaussian_order(inspector.drift) if inspector.drift is not None else []
        images, libs = check_inputs(inspector, args.check_images, args.check_index,
                                    args.check_count, keys)
        path = export_onnx(inspector, args.out, batch_size_dynamic=args.static_batch is None,
                           opset=args.opset, batch_size=args.static_batch or 2)
        console.print(f"exported {args.inspector} -> {path} "
                      f"({path.stat().st_size / 2**20:.1f} MiB)")
        report = check_parity(inspector, path, images, libs, atol=args.atol, rtol=args.rtol)
    except (VqcError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    source = "random" if args.check_images is None and args.check_index is None else "file"
    print(f"parity on {report['images']} {source} image(s), atol={args.atol:g}, "
          f"rtol={args.rtol:g}:")
    for name in ("logits", "probabilities", "drift_scores"):
        if f"{name}_max_abs" in report:
            print(f"  {name:<14} max abs {report[f'{name}_max_abs']:.3g}  "
                  f"max rel {report[f'{name}_max_rel']:.3g}")
    if report["gaussians"]:
        print(f"  drift scores under {len(report['gaussians'])} Gaussian(s): "
              f"{', '.join(report['gaussians'])}")
    print(f"  decisions identical: {report['decisions_differ'] == 0}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
