"""``make demo``: the whole flow on the synthetic set.

Generate it, fine-tune the default network (``experiment=demo``), fit drift on its features,
predict the test images into a submission CSV with ``vqc-predict``, score it with
``vqc-score``, and say where everything is.

Any config override may follow, e.g. ``python -m vqc.cli.demo trainer.max_epochs=2``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import open_dict
from rich.console import Console
from rich.table import Table

from vqc.config import compose
from vqc.errors import VqcError

console = Console(width=None if sys.stdout.isatty() else 160)  # a log file keeps whole tables


def class_count_table(counts: pd.DataFrame, title: str) -> Table:
    """Images per class (rows) and split (columns)."""
    table = Table(title=title)
    table.add_column("code", justify="right")
    table.add_column("class")
    for split in counts.columns:
        table.add_column(split, justify="right")
    for code, (name, row) in enumerate(counts.iterrows()):
        table.add_row(str(code), str(name), *(str(int(v)) for v in row))
    table.add_row("", "total", *(str(int(counts[c].sum())) for c in counts.columns), style="bold")
    return table


def show_progress_lines(terminal: bool | None = None) -> None:
    """Output that is not a terminal (a log file) gets the progress lines ``train.py`` writes:
    one per epoch and one per long phase. In a terminal the progress bars show it."""
    from vqc.progress import in_terminal

    if not (in_terminal() if terminal is None else terminal):
        logging.getLogger("vqc.progress").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="config overrides (Hydra syntax)")
    parser.add_argument("--data-only", action="store_true",
                        help="generate and load the data set, print its class counts, stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    show_progress_lines()
    from vqc.cli.report import print_training_summary
    from vqc.cli.start import quiet_library_warnings
    from vqc.data.build import build_datamodule
    from vqc.training.recipe import resolve_data_choices
    from vqc.training.task import run_task

    quiet_library_warnings()
    logging.getLogger("lightning.pytorch").propagate = False  # it prints its own lines
    try:
        cfg = compose("train", ["experiment=demo", *args.overrides])
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        with open_dict(cfg):
            cfg.paths.run_dir = str(Path(cfg.paths.output_dir) / "demo" / stamp)
        console.rule("1. data")
        start = time.perf_counter()
        resolve_data_choices(cfg)  # data.preprocess.size=auto and the like, as a run does
        datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=int(cfg.seed))
        datamodule.prepare_data()
        datamodule.setup()
        console.print(class_count_table(datamodule.class_counts(),
                                        f"synthetic data set at {cfg.data.root}"))
        console.print(f"ready in {time.perf_counter() - start:.0f} s "
                      f"(images cached in {datamodule.cache_dir()})")
        if args.data_only:
            return 0
        console.rule(f"2. training: {cfg.model.name}, {cfg.trainer.max_epochs} epochs")

        def report(summary: dict) -> None:  # printed while the W&B run is open: it keeps it
            console.rule("3. test results")
            print_training_summary(summary)

        summary = run_task(cfg, run_name=f"demo-{stamp}", group="demo", report=report)
    except VqcError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    return predict_and_score(Path(cfg.paths.run_dir), Path(cfg.data.root), summary)


def predict_and_score(run_dir: Path, root: Path, summary: Any) -> int:
    """Steps 4 and 5: the saved inspector predicts the test images, vqc-score scores them,
    and where everything is."""
    console.rule("4. vqc-predict on the test images, then vqc-score")
    from vqc.cli import evaluate, predict

    submission = run_dir / "submission.csv"
    test_index = run_dir / "test_index.csv"
    pd.read_csv(root / "Y_test.csv", index_col=0).drop(columns="Label").to_csv(test_index)
    predict_args = ["--inspector", summary["inspector"], "--images",
                    str(root / "input_test"), "--index", str(test_index), "--out",
                    str(submission)]
    console.print("vqc-predict " + " ".join(predict_args))
    if predict.main(predict_args) != 0:
        return 1
    evaluate_args = ["--predictions", str(submission), "--labels", str(root / "Y_test.csv"),
                     "--out", str(run_dir / "evaluation")]
    console.print("vqc-score " + " ".join(evaluate_args))
    evaluate.main(evaluate_args)
    console.rule("5. where everything is")
    console.print(f"run folder: {run_dir}\n  submission.csv, submission_details.csv: the "
                  f"predictions\n  evaluation/: scores.md, scores.json, confusion.png\n"
                  f"  figures/: confusion matrices, t-SNE, misclassified images\n"
                  f"  inspector.safetensors: the deployable model (vqc-predict --inspector)\n"
                  f"  checkpoints/, summary.json, test_report.md, inspection_report.md")
    if summary.get("wandb_dir"):
        console.print(f"W&B (offline): wandb sync {summary['wandb_dir']}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
