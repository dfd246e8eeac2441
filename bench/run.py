"""Run the benchmarks and write ``docs/BENCHMARKS.md``: ``python -m bench.run [--quick]``."""

from __future__ import annotations

import argparse
import importlib
import os
import time
import traceback

from bench.common import log
from bench.report import SECTIONS, write

MODULES = {"default_recipe": "bench.development_sets", "inspection": "bench.inspection",
           "data": "bench.data_pipeline",
           "training": "bench.training", "padim_fit": "bench.padim_fit",
           "real_data": "bench.real_data", "demo": "bench.demo"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and fewer runs: checks that every benchmark runs")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated benchmarks among {', '.join(SECTIONS)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite the page")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(MODULES))
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {unknown}; choose among {list(MODULES)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    failed = []
    for section in wanted:
        start = time.perf_counter()
        log(f"--- {section} ---")
        try:
            importlib.import_module(MODULES[section]).run(args.quick, args.device)
        except Exception:  # one broken benchmark must not lose the others' results
            traceback.print_exc()
            failed.append(section)
        log(f"--- {section}: {time.perf_counter() - start:.0f} s ---")
    if not args.no_report:
        log(f"wrote {write()}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (their earlier results, if any, are kept)")


if __name__ == "__main__":
    main()
