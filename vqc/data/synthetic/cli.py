"""The ``vqc-synthetic`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vqc.classes import CHALLENGE_CLASS_NAMES
from vqc.data.synthetic.counts import DEFAULT_CLASS_FLOOR, DEFAULT_DRIFT_FRACTION
from vqc.data.synthetic.writer import ensure_generated, generate
from vqc.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqc-synthetic",
        description="Write a synthetic wire-bond data set in the challenge layout "
                    "(input_train/, Y_train.csv, input_test/, Y_test.csv).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-train", type=int, default=1500, help="training images (1500)")
    parser.add_argument("--n-test", type=int, default=300, help="test images, Drift included (300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--class-floor", type=int, default=DEFAULT_CLASS_FLOOR,
                        help=f"least training images per class ({DEFAULT_CLASS_FLOOR})")
    parser.add_argument("--drift-fraction", type=float, default=DEFAULT_DRIFT_FRACTION,
                        help=f"share of Drift images in test ({DEFAULT_DRIFT_FRACTION})")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes drawing images (default: up to 2)")
    parser.add_argument("--if-needed", action="store_true",
                        help="keep an existing complete set made with the same parameters")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    kwargs = {"n_train": args.n_train, "n_test": args.n_test, "seed": args.seed,
              "class_floor": args.class_floor, "drift_fraction": args.drift_fraction,
              "workers": args.workers}
    try:
        summary = ensure_generated(args.out, **kwargs) if args.if_needed else generate(
            args.out, **kwargs)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = f"wrote in {summary.seconds:.1f} s" if summary.generated else "kept (already complete)"
    print(f"{summary.out_dir}: {verb}: {summary.n_train} train, {summary.n_test} test images")
    width = max(len(n) for n in CHALLENGE_CLASS_NAMES)
    for name in CHALLENGE_CLASS_NAMES:
        print(f"  {name:<{width}}  train {summary.train_counts.get(name, 0):>6}  "
              f"test {summary.test_counts.get(name, 0):>5}")
    return 0
