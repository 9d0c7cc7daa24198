"""Scaling out is Lightning's: DDP with 2 CPU processes (gloo) sees disjoint shards and matches 1 process."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import lightning as L
    from zoo.train import compose, run

    out, devices, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

    class ShardRecorder(L.Callback):
        # Which training samples each rank's sampler hands out this epoch.
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.world_size > 1:
                indices = list(iter(trainer.train_dataloader.sampler))
                (out / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json").write_text(json.dumps(indices))

    overrides = [f"out_dir={out}", "data=digits", f"data.batch_size={batch}", "trainer.max_epochs=4",
                 "trainer.enable_progress_bar=false",
                 "trainer.accelerator=cpu", f"trainer.devices={devices}", "optim.lr=0.005", "trainer.log_every_n_steps=1"]
    if devices > 1:
        overrides.append("trainer.strategy=ddp")
    summary = run(compose("quickstart", overrides), out / "run", callbacks=[ShardRecorder()])
    if summary:
        (out / "summary.json").write_text(json.dumps(summary))
    """
)


def train(tmp_path, devices: int, batch: int) -> dict:
    out = tmp_path / f"devices{devices}"
    out.mkdir()
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(out), str(devices), str(batch)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"summary": json.loads((out / "summary.json").read_text()), "out": out, "log": proc.stdout + proc.stderr}


@pytest.mark.slow(reason="two full 4-epoch digits runs, DDP and one process, so their accuracies can be compared")
def test_ddp_two_cpu_processes(tmp_path):
    ddp = train(tmp_path, devices=2, batch=32)  # 2 ranks x 32 = the single process's 64
    assert "distributed_backend=gloo" in ddp["log"] and "All distributed processes registered" in ddp["log"]
    for epoch in range(4):
        ranks = [json.loads((ddp["out"] / f"rank{r}_epoch{epoch}.json").read_text()) for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == 719
        # Disjoint shards covering all 1437 training images; DistributedSampler repeats one to even them out.
        assert len(set(ranks[0]) & set(ranks[1])) <= 1
        assert set(ranks[0]) | set(ranks[1]) == set(range(1437))
    single = train(tmp_path, devices=1, batch=64)
    a, b = ddp["summary"], single["summary"]
    assert a["epochs"] == b["epochs"] == 4
    assert b["val_top1"] > 0.9  # both runs learn, so the comparison means something
    # Different shuffles and per-rank BatchNorm statistics: equal within tolerance, not bit for bit.
    assert abs(a["val_top1"] - b["val_top1"]) <= 0.04, (a["val_top1"], b["val_top1"])
    assert abs(a["val_loss"] - b["val_loss"]) <= 0.15 * b["val_loss"], (a["val_loss"], b["val_loss"])
