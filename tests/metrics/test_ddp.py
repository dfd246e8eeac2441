"""Two processes on CPU (gloo) give the single-process value: the state is a summed matrix."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.metrics.cases import LABELS, MISTAKES, MISTAKES_PWA_OFFICIAL

# uneven shards: rank 0 gets 3 images, rank 1 the other 7
SHARDS = [slice(0, 3), slice(3, len(LABELS))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from vqc.metrics import PenaltyWeightedAccuracy, ScoringMetrics

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        shard = SHARDS[rank]
        preds, target = torch.tensor(MISTAKES[shard]), torch.tensor(LABELS[shard])
        pwa, scores = PenaltyWeightedAccuracy(), ScoringMetrics()
        pwa.update(preds, target)
        scores.update(preds, target)
        result = {
            "pwa": float(pwa.compute()),
            "scores_pwa": float(scores.compute()["pwa"]),
            "report_confusion": scores.report().confusion,
            "local_n": int(scores.confmat.sum()),  # unsynced again after compute
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_process_gloo_equals_single_process(tmp_path: Path) -> None:
    from vqc.metrics import PenaltyWeightedAccuracy, score_predictions

    single = PenaltyWeightedAccuracy()
    single.update(torch.tensor(MISTAKES), torch.tensor(LABELS))
    expected = float(single.compute())
    assert expected == pytest.approx(MISTAKES_PWA_OFFICIAL, abs=1e-12)  # 1 - 22101 / 100000

    # fork: the children inherit the imported modules instead of importing torch again
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")

    full_confusion = score_predictions(torch.tensor(MISTAKES), torch.tensor(LABELS)).confusion
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["pwa"] == pytest.approx(expected, abs=1e-12)
        assert result["scores_pwa"] == pytest.approx(expected, abs=1e-12)
        assert result["report_confusion"] == full_confusion
        assert result["local_n"] == len(range(*SHARDS[rank].indices(len(LABELS))))
