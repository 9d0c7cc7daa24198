"""SimpleNet: the official release's key layout and stride modes, and its bare .pth state dicts through weights=PATH."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import UnsafeWeightsError


def test_simplenet_has_the_releases_keys_and_mode_strides(tmp_path):
    model = zoo.load("simplenetv1_5m_m2").eval()
    state = model.state_dict()
    convs = sorted(int(k.split(".")[1]) for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)
    assert convs == [0, 4, 8, 12, 16, 20, 26, 30, 34, 38, 44, 48, 52]  # the release's indices (docs/sources.md)
    assert state["features.48.weight"].shape == (256, 2048, 1, 1) and state["classifier.weight"].shape == (1000, 256)
    x = torch.rand(1, 3, 224, 224)
    mode1 = zoo.load("simplenetv1_5m_m1").eval()
    with torch.no_grad():  # mode 1 strides the third convolution, mode 2 the fourth instead
        assert mode1.features[:11](x).shape[-1] == 28 and model.features[:11](x).shape[-1] == 56
        assert model(x).shape == mode1(x).shape == (1, 1000)

    released = tmp_path / "simplenetv1_5m_m2-9bd6bb36.pth"  # how the release names its files
    torch.save({k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}, released)
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("simplenetv1_5m_m2", weights=released)
    loaded = zoo.load("simplenetv1_5m_m2", weights=released, allow_pickle=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), torch.load(released).values()))
