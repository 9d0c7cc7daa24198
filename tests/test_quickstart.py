"""The main job, as README's first command runs it: `zoo quickstart` within 5 minutes and >= 95% top-1."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_meets_its_targets(tmp_path):
    zoo = str(Path(sys.executable).with_name("zoo"))
    started = time.perf_counter()
    proc = subprocess.run([zoo, "quickstart", "--out-dir", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    top1 = float(re.search(r"val top-1 ([\d.]+)%", proc.stdout).group(1)) / 100
    assert top1 >= 0.95
    assert "reloads with the same predictions: yes" in proc.stdout
    (run_dir,) = (tmp_path / "quickstart").iterdir()
    for part in ("model/model.safetensors", "eval/metrics.json", "eval/confusion_matrix.png", "checkpoints/best.ckpt",
                 "export/model.onnx", "export/model.onnx.verification.json"):
        assert (run_dir / part).is_file(), part
    # It ends with a verified export and a card, and prints where the card is.
    assert re.search(r"ONNX export\s+: \S+model\.onnx\s+\(verified against PyTorch", proc.stdout)
    card = Path(re.search(r"the model card: (\S+)\s*$", proc.stdout).group(1))  # its last line
    assert card.resolve() == (run_dir / "README.md").resolve()
    text = card.read_text()
    assert "model-index:" in text and f"value: {round(top1, 4)}" in text and "| `model.onnx` | onnx | real input |" in text
    assert re.search(r"^\| torch \| 1 \| 3x\d+x\d+ \| [\d.]+ \|", text, re.M)  # timed by zoo bench, with its date
    print(f"quickstart: {elapsed:.0f} s wall, val top-1 {top1:.2%}")
