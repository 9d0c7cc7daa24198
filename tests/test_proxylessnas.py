"""ProxylessNAS from its layer tables with ofa's layers: the released configurations' networks exactly, and a release
checkpoint's key layout through weights=PATH."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import UnsafeWeightsError

pytest.importorskip("ofa")

# Parameters of the networks the released configurations describe (ofa's ProxylessNASNets.build_from_config on
# han-cai/files' proxylessnas/<name>.config; pytorchcv's independent ports count the same).
PARAMS = {"proxylessnas_mobile": 4_080_512, "proxylessnas_cpu": 4_361_648, "proxylessnas_gpu": 7_119_848,
          "proxylessnas_mobile_14": 6_857_568}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_each_network_has_the_released_configurations_parameters(name):
    assert sum(p.numel() for p in zoo.load(name).parameters()) == PARAMS[name]


def test_features_searched_away_blocks_and_the_releases_checkpoint(tmp_path):
    model = zoo.load("proxylessnas_gpu").eval()
    x = torch.rand(1, 3, 96, 128)
    import pickle

    again = pickle.loads(pickle.dumps(model))  # whole-model pickles (spawned workers, torch.save) find the class
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
        maps = model.forward_intermediates(x)
        assert [tuple(m.shape[1:]) for m in maps] == [(24, 48, 64), (32, 24, 32), (56, 12, 16), (128, 6, 8), (432, 3, 4)]
        assert torch.equal(model.blocks[2](maps[1]), maps[1])  # a searched-away block passes its input on
    state = model.state_dict()
    assert state["blocks.5.conv.depth_conv.conv.weight"].shape == (96, 1, 7, 7)  # 7x7 depthwise on 32 x 3 channels
    released = tmp_path / "proxyless_gpu.pth"  # the release's wrapping and its older block name
    renamed = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: torch.randn_like(v)
               if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": renamed}, released)
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("proxylessnas_gpu", weights=released)
    loaded = zoo.load("proxylessnas_gpu", weights=released, allow_pickle=True)
    assert torch.equal(loaded.state_dict()["blocks.5.conv.depth_conv.conv.weight"],
                       renamed["blocks.5.mobile_inverted_conv.depth_conv.conv.weight"])
