"""The main job, as README's first command runs it: `zoo quickstart` within 5 minutes and >= 95% top-1."""
from __future__ import annotations

import re
import types
from pathlib import Path

import pytest


@pytest.mark.slow(reason="the quickstart's own end-to-end run, shared by the deploy tests")
def test_quickstart_meets_its_targets(quickstart):
    elapsed, run_dir = quickstart["elapsed"], quickstart["run_dir"]
    proc = types.SimpleNamespace(stdout=quickstart["stdout"])
    top1 = float(re.search(r"val top-1 ([\d.]+)%", proc.stdout).group(1)) / 100
    assert top1 >= 0.95
    assert "reloads with the same predictions: yes" in proc.stdout
    for part in ("model/model.safetensors", "eval/metrics.json", "eval/confusion_matrix.png", "checkpoints/best.ckpt",
                 "export/model.onnx", "export/model.onnx.verification.json"):
        assert (run_dir / part).is_file(), part
    # It ends with a verified export and a card, and prints where the card is.
    assert re.search(r"ONNX export\s+: \S+model\.onnx\s+\(verified against PyTorch", proc.stdout)
    card = Path(re.search(r"the model card: (\S+)\s*$", proc.stdout).group(1))  # its last line
    assert card.resolve() == (run_dir / "README.md").resolve()
    text = card.read_text()
    assert "model-index:" in text and f"value: {round(top1, 4)}" in text and "| `model.onnx` | onnx | real input |" in text
    assert re.search(r"^\| torch \| fp32 \| 1 \| 3x\d+x\d+ \| [\d.]+ \|", text, re.M)  # timed by zoo bench, with its date
    print(f"quickstart: {elapsed:.0f} s wall, val top-1 {top1:.2%}")
