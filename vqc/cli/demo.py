"""``make demo``: generate the synthetic set, load it through the data module, report on it."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

from rich.console import Console
from rich.table import Table

from vqc.config import compose
from vqc.errors import VqcError

console = Console()


def class_count_table(counts, title: str) -> Table:  # counts: DataFrame class x split
    table = Table(title=title)
    table.add_column("code", justify="right")
    table.add_column("class")
    for split in counts.columns:
        table.add_column(split, justify="right")
    for code, (name, row) in enumerate(counts.iterrows()):
        table.add_row(str(code), str(name), *(str(int(v)) for v in row))
    table.add_row("", "total", *(str(int(counts[c].sum())) for c in counts.columns), style="bold")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("overrides", nargs="*",
                        help="config overrides, e.g. data.generate.n_train=300")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from vqc.data.build import build_datamodule

    try:
        cfg = compose("train", args.overrides)
        datamodule = build_datamodule(cfg.data, cfg.paths.cache_dir, seed=int(cfg.seed))
        start = time.perf_counter()
        datamodule.prepare_data()
        datamodule.setup()
        elapsed = time.perf_counter() - start
    except VqcError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    console.print(class_count_table(datamodule.class_counts(),
                                    f"data={cfg.data.get('format')} at {cfg.data.root}"))
    images, labels = next(iter(datamodule.train_dataloader()))
    console.print(f"data set ready in {elapsed:.1f} s; cache: {datamodule.cache_dir()}")
    console.print(f"one balanced training batch: images {tuple(images.shape)}, "
                  f"labels per class {labels.bincount(minlength=datamodule.num_classes).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
