"""MatFormer building blocks: a MatViT is a plain ViT, granularities nest, extraction keeps the outputs."""
from __future__ import annotations

import pytest
import torch

from zoo.models.matformer import GRANULARITIES, MatViT, NestedMlp, extract


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size,arch", [("ti", "vit_tiny_patch16_224"), ("s", "vit_small_patch16_224"), ("b", "vit_base_patch16_224")])
def test_full_model_is_timms_plain_vit(size, arch):
    import timm

    model, vit = MatViT(size), timm.create_model(arch)
    assert count(model) == count(vit)  # e.g. 86,567,656 for B/16
    assert {k.removeprefix("vit.") for k in model.state_dict()} == set(vit.state_dict())


def test_xl_computes_exactly_what_the_plain_vit_does():
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64).eval()
    model = MatViT("ti", num_classes=5, img_size=64).eval()
    model.load_state_dict({f"vit.{k}": v for k, v in vit.state_dict().items()})
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), vit(x))


def tiny(seed: int = 0) -> MatViT:
    torch.manual_seed(seed)
    return MatViT("ti", num_classes=5, img_size=64).eval()


def test_granularities_are_prefixes_and_switch_in_place():
    model = tiny()
    x = torch.rand(2, 3, 64, 64)
    outputs = {}
    for name, divisor in GRANULARITIES.items():
        assert model.set_granularity(name).granularity == [768 // divisor] * 12
        with torch.no_grad():
            outputs[name] = model(x)
    assert len({tuple(o.flatten().tolist()) for o in outputs.values()}) == 4  # four different sub-networks
    # a prefix: zeroing the hidden units past d_ff/8 does not change the "s" output
    for mlp in model.mlps:
        with torch.no_grad():
            mlp.fc1.weight[96:] = 0
            mlp.fc2.weight[:, 96:] = 0
    with torch.no_grad():
        torch.testing.assert_close(model.set_granularity("s")(x), outputs["s"])


def test_mix_and_match_and_errors():
    model = tiny()
    mixed = ["s"] * 4 + ["m"] * 4 + ["l", "l", "xl", 700]
    assert model.set_granularity(mixed).granularity == [96] * 4 + [192] * 4 + [384, 384, 768, 700]
    with pytest.raises(ValueError, match="one granularity per layer"):
        model.set_granularity(["s", "m"])
    with pytest.raises(ValueError, match="unknown granularity 'xxl'"):
        model.set_granularity("xxl")
    with pytest.raises(ValueError, match="outside 1..768"):
        model.set_granularity([800] * 12)


@pytest.mark.parametrize("granularity", ["s", "l", ["s"] * 6 + ["m"] * 3 + ["xl"] * 3])
def test_extracted_model_is_smaller_with_identical_outputs(granularity):
    model = tiny().set_granularity("xl")
    x = torch.rand(2, 3, 64, 64)
    small = extract(model, granularity).eval()
    assert model.granularity == [768] * 12  # the source is untouched
    with torch.no_grad():
        torch.testing.assert_close(small(x), model.set_granularity(granularity)(x))
    widths = model.widths(granularity)
    assert [m.max_width for m in small.mlps] == widths
    assert count(model) - count(small) == sum(2 * 192 * (768 - w) + (768 - w) for w in widths)
    with pytest.raises(ValueError, match="outside"):
        small.set_granularity("xl" if widths[0] < 768 else [769] * 12)


def test_nested_mlp_refuses_a_hidden_norm():
    with pytest.raises(ValueError, match="no norm"):
        NestedMlp(8, 32, norm_layer=torch.nn.LayerNorm)


def test_extracted_model_saves_loads_and_exports(tmp_path):
    import json

    import zoo
    from zoo.export import export

    torch.manual_seed(0)
    model = zoo.load("matvit_ti", num_classes=5, img_size=64).eval()
    mixed = ["s"] * 6 + ["l"] * 6
    small = extract(model, mixed).eval()
    zoo.save(small, tmp_path / "small")
    saved = json.loads((tmp_path / "small" / "config.json").read_text())["model_kwargs"]
    assert saved == {"size": "ti", "img_size": 64, "mlp_dims": [96] * 6 + [384] * 6}
    again = zoo.load(str(tmp_path / "small")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.set_granularity(mixed)(x))
    result = export(again, "onnx", imgsz=64, out=tmp_path / "small.onnx")
    assert result.verification["random"]["ok"] and count(again) < count(model)
