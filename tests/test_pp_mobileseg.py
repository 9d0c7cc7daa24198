"""PP-MobileSeg against the official implementation: the same parameter count as the official code builds, and the
same outputs, stage by stage, for fixed random weights in the official checkpoint layout.

``tests/data/pp_mobileseg_tiny_parity.npz`` holds those weights (Paddle key names) and the outputs PaddleSeg's own
model gave for a 2x3x96x128 input (an independent reference: docs/research/pp_mobileseg.md, "Parity fixture")."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo

FIXTURE = Path(__file__).parent / "data" / "pp_mobileseg_tiny_parity.npz"


@pytest.mark.parametrize("variant,count", [("tiny", 1_492_298), ("base", 5_943_878)])
def test_parameter_counts_equal_the_official_models(variant, count):
    """The counts PaddleSeg's model builds for 150 classes (docs/research/pp_mobileseg.md, section 5.1)."""
    model = zoo.load(f"pp_mobileseg_{variant}")
    assert sum(p.numel() for p in model.parameters()) == count
    reported = zoo.info(f"pp_mobileseg_{variant}").reported_value("params")
    assert f"{count:,}" in reported.note  # the README's own figure differs; the spec says so


def official_tiny(tmp_path):
    """The tiny model with the fixture's weights, saved in the official (PaddleSeg) key layout and converted on load."""
    from safetensors.torch import save_file

    data = np.load(FIXTURE)
    paddle_state = {k.removeprefix("weight/"): torch.from_numpy(data[k]) for k in data.files if k.startswith("weight/")}
    assert any(k.endswith("._mean") for k in paddle_state)  # Paddle's BatchNorm names: the converter's job
    path = tmp_path / "official_layout.safetensors"
    save_file({k: v.contiguous() for k, v in paddle_state.items()}, str(path))
    return zoo.load("pp_mobileseg_tiny", weights=str(path)).eval(), data


def test_tiny_matches_the_official_outputs_stage_by_stage(tmp_path):
    model, data = official_tiny(tmp_path)
    x = torch.from_numpy(data["io/input"])
    with torch.no_grad():
        f4, f8, f16, f32 = model.backbone.features(x)
        fused = model.backbone(x)
        low = model.decode_head(fused)
        logits = model(x)
    for name, ours in (("smb1", f4), ("smb2", f8), ("trans1", f16), ("trans2", f32), ("aam", fused), ("logits_low", low)):
        reference = torch.from_numpy(data[f"io/{name}"])
        assert ours.shape == reference.shape, name
        assert (ours - reference).abs().max() < 1e-5 * max(1.0, float(reference.abs().max())), name
    assert logits.shape == (2, 150, 96, 128)  # eval mode: upsampled to the input, the zoo's contract
    official_vim = torch.from_numpy(data["io/vim_pred"]).long()
    assert torch.equal(model.classes(x), official_vim)  # the Valid Interpolate Module, as PaddleSeg computes it
    full = logits.argmax(1)
    assert torch.equal(model.classes(x, valid_only=False), full)
    assert (full == official_vim).float().mean() > 0.99  # VIM only approximates the full argmax


def test_vim_exports_to_onnx_with_the_same_class_maps(tmp_path):
    """The Valid Interpolate Module's data-dependent class choice survives torch.onnx (dynamo): onnxruntime gives the
    same class map as PyTorch, which is the official VIM's (the fixture's weights and input, 150 classes)."""
    import onnxruntime as ort

    from zoo.models.pp_mobileseg import ClassMap

    official, data = official_tiny(tmp_path)
    model = ClassMap(official)
    x = torch.from_numpy(data["io/input"])
    program = torch.onnx.export(model, (x[:1],), dynamo=True, input_names=["input"], output_names=["classes"], verbose=False)
    program.save(str(tmp_path / "vim.onnx"))
    runner = ort.InferenceSession(str(tmp_path / "vim.onnx"), providers=["CPUExecutionProvider"])
    got = runner.run(None, {"input": x[:1].numpy()})[0]
    with torch.no_grad():
        present = torch.unique(official.decode_head(official.backbone(x[:1])).argmax(1))
    assert 1 < len(present) < 150  # only some classes win at low resolution: the VIM path is exercised
    assert np.array_equal(got, data["io/vim_pred"][:1])
