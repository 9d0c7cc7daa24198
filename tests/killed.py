"""A training process killed for real: ``zoo.train.run`` in a child process that SIGKILLs itself mid-epoch (after the
given epoch's first batch, so the last checkpoint is the previous epoch's and no cleanup code runs)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, os, signal, sys

    import lightning as L

    from zoo.train import compose, run

    recipe, overrides, run_dir, epoch = json.loads(sys.argv[1])


    class Kill(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == epoch and batch_idx == 1:
                os.kill(os.getpid(), signal.SIGKILL)


    run(compose(recipe, overrides), run_dir, callbacks=[Kill()])
""")


def train_until_killed(recipe: str, overrides: list[str], run_dir: Path, epoch: int) -> Path:
    """Train in a child process killed with SIGKILL in ``epoch``; the checkpoint it leaves (the epoch before's)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([recipe, overrides, str(run_dir), epoch])],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file(), f"the killed run left no checkpoint: {sorted(p.name for p in run_dir.rglob('*'))}"
    return last
