"""ProxylessNAS from its layer tables with ofa's layers: the released configurations' networks exactly, and a release
checkpoint's key layout through weights=PATH. Once-for-All: the supernets, the 50 released specialised networks as
their sub-networks, extraction, the budget search and the training plugin."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import UnsafeWeightsError

pytest.importorskip("ofa")

# Parameters of the networks the released configurations describe (ofa's ProxylessNASNets.build_from_config on
# han-cai/files' proxylessnas/<name>.config; pytorchcv's independent ports count the same).
PARAMS = {"proxylessnas_mobile": 4_080_512, "proxylessnas_cpu": 4_361_648, "proxylessnas_gpu": 7_119_848,
          "proxylessnas_mobile_14": 6_857_568,
          # the supernets as ofa.model_zoo.ofa_net builds them (kernels 3/5/7, expansions 3/4/6, depths 2/3/4)
          "ofa_mbv3_w10": 7_678_880, "ofa_mbv3_w12": 10_715_752, "ofa_proxyless_w13": 7_956_882,
          # ofa's build_from_config of the released ofa_specialized/<id>/net.config
          "ofa_flops_595m": 9_135_928, "ofa_note10_8ms": 3_761_168, "ofa_cpu_17ms": 4_933_568}
# Every released specialised network: ofa's build_from_config of han-cai/files ofa/ofa_specialized/<id>/net.config.
SPECIALIZED_PARAMS = {
    "1080ti_gpu64-12ms_top1-72.6_finetune-25": 5_903_488, "1080ti_gpu64-15ms_top1-73.8_finetune-25": 6_042_264,
    "1080ti_gpu64-22ms_top1-75.3_finetune-25": 5_186_720, "1080ti_gpu64-27ms_top1-76.4_finetune-25": 6_493_328,
    "LG-G8_lat-11ms_top1-73.0_finetune-25": 4_965_160, "LG-G8_lat-16ms_top1-74.7_finetune-25": 5_809_576,
    "LG-G8_lat-24ms_top1-76.4_finetune-25": 5_809_576, "LG-G8_lat-8ms_top1-71.1_finetune-25": 4_112_176,
    "cpu_lat-10ms_top1-71.1_finetune-25": 4_158_272, "cpu_lat-11ms_top1-72.0_finetune-25": 4_394_600,
    "cpu_lat-15ms_top1-74.6_finetune-25": 4_875_704, "cpu_lat-17ms_top1-75.7_finetune-25": 4_933_568,
    "flops-389M_top1-79.1_finetune-75": 8_386_544, "flops-482M_top1-79.6_finetune-75": 9_066_368,
    "flops-595M_top1-80.0_finetune-75": 9_135_928, "note10_lat-11ms_top1-73.6_finetune-25": 4_278_224,
    "note10_lat-16ms_top1-75.5_finetune-25": 4_932_272, "note10_lat-22ms_top1-76.6_finetune-25": 5_863_056,
    "note10_lat-30ms_top1-78.4_finetune-75": 7_465_896, "note10_lat-41ms_top1-79.3_finetune-75": 9_030_192,
    "note10_lat-50ms_top1-79.7_finetune-75": 9_057_064, "note10_lat-64ms_top1-80.2_finetune-75": 9_109_040,
    "note10_lat-8ms_top1-71.4_finetune-25": 3_761_168, "note8_lat-22ms_top1-70.4_finetune-25": 4_304_592,
    "note8_lat-31ms_top1-72.8_finetune-25": 4_595_536, "note8_lat-49ms_top1-74.9_finetune-25": 6_024_176,
    "note8_lat-65ms_top1-76.1_finetune-25": 5_296_672, "pixel1_lat-132ms_top1-79.8_finetune-75": 9_225_040,
    "pixel1_lat-143ms_top1-80.1_finetune-75": 9_221_888, "pixel1_lat-20ms_top1-71.4_finetune-25": 4_304_592,
    "pixel1_lat-28ms_top1-73.3_finetune-25": 5_196_680, "pixel1_lat-40ms_top1-74.9_finetune-25": 6_024_176,
    "pixel1_lat-58ms_top1-76.9_finetune-75": 5_809_576, "pixel1_lat-79ms_top1-78.7_finetune-75": 8_168_608,
    "pixel2_lat-25ms_top1-71.5_finetune-25": 4_137_152, "pixel2_lat-35ms_top1-73.4_finetune-25": 5_060_264,
    "pixel2_lat-50ms_top1-74.7_finetune-25": 4_687_720, "pixel2_lat-62ms_top1-75.8_finetune-25": 5_809_576,
    "s7edge_lat-29ms_top1-70.5_finetune-25": 3_830_224, "s7edge_lat-41ms_top1-73.1_finetune-25": 4_663_872,
    "s7edge_lat-58ms_top1-74.7_finetune-25": 4_623_312, "s7edge_lat-88ms_top1-76.3_finetune-25": 6_426_992,
    "tx2_gpu16-35ms_top1-70.3_finetune-25": 4_315_144, "tx2_gpu16-47ms_top1-72.9_finetune-25": 4_933_568,
    "tx2_gpu16-80ms_top1-75.4_finetune-25": 5_186_720, "tx2_gpu16-96ms_top1-75.8_finetune-25": 6_163_200,
    "v100_gpu64-11ms_top1-76.1_finetune-25": 6_195_512, "v100_gpu64-5ms_top1-71.6_finetune-25": 5_186_720,
    "v100_gpu64-6ms_top1-73.0_finetune-25": 4_933_568, "v100_gpu64-9ms_top1-75.3_finetune-25": 5_186_720,

}


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


def test_every_released_specialised_network_is_its_supernets_sub_network():
    from zoo.bench import count_macs
    from zoo.ofa import SPECIALIZED, extract, subnet_setting

    assert set(SPECIALIZED) == set(SPECIALIZED_PARAMS)
    supernets = {name: zoo.load(f"ofa_{name}") for name in ("mbv3_w10", "mbv3_w12", "proxyless_w13")}
    for key, (supernet, size, *_) in SPECIALIZED.items():
        small = extract(supernets[supernet], subnet_setting(supernet, key))
        assert sum(p.numel() for p in small.parameters()) == SPECIALIZED_PARAMS[key], key
        if key.startswith("flops-"):  # these ids name their MAC budget: 595M, 482M, 389M at their resolution
            assert round(count_macs(small.eval(), torch.rand(1, 3, size, size)) / 1e6) == int(key[6:9]), key


def test_extract_gives_the_supernets_outputs_and_saves_its_setting(tmp_path):
    import random

    from zoo.errors import BadArgumentError
    from zoo.export import deploy_form
    from zoo.ofa import extract

    supernet = zoo.load("ofa_proxyless_w13", num_classes=5).eval()
    x = torch.rand(2, 3, 64, 64)
    random.seed(1)
    setting = supernet.sample_active_subnet()  # ofa's own draw; the supernet now runs it
    with torch.no_grad():
        expected = supernet(x)
        small = extract(supernet)
        assert torch.allclose(small.eval()(x), expected, atol=1e-5)
        exported = deploy_form(supernet)  # what export traces: the active sub-network alone
        assert type(exported).__name__ == "ProxylessNAS" and torch.allclose(exported(x), expected, atol=1e-5)
        supernet.set_max_net()
        largest = supernet(x)
        small_again = extract(supernet, setting)
        assert torch.allclose(supernet(x), largest)  # the supernet keeps its own active setting
        assert torch.allclose(small_again.eval()(x), expected, atol=1e-5)
        assert len(small.blocks) == 1 + sum(min(d, n) for d, n in zip(setting["d"], [4, 4, 4, 4, 4, 1]))
        maps = small.forward_intermediates(x)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2] and maps[-1].shape[1] == small.feature_info[-1]["num_chs"]
    zoo.save(small, tmp_path / "small")
    again = zoo.load(tmp_path / "small").eval()
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    with pytest.raises(BadArgumentError, match="did you mean note10_lat-8ms"):
        zoo.load("ofa_mbv3_w10", subnet="note10_lat-8ms_top1-71.4")
    with pytest.raises(BadArgumentError, match="sub-network of ofa_proxyless_w13, not of ofa_mbv3_w10"):
        zoo.load("ofa_mbv3_w10", subnet="cpu_lat@17ms_top1@75.7_finetune@25")
    with pytest.raises(BadArgumentError, match="takes a Once-for-All supernet .*, not ofa_cpu_17ms"):
        extract(zoo.load("ofa_cpu_17ms"))  # a specialised network is already extracted
    with pytest.raises(BadArgumentError, match="takes a Once-for-All supernet .*, not proxylessnas_mobile"):
        zoo.ofa.search(zoo.load("proxylessnas_mobile"))
    with pytest.raises(BadArgumentError, match=r"subnet\['ks'\] needs 20 values from 3, 5, 7"):
        zoo.load("ofa_mbv3_w10", subnet={"ks": [9] * 20, "e": [3] * 20, "d": [2] * 5})


def test_specialize_picks_the_most_accurate_subnetwork_within_the_budget(tmp_path):
    from zoo.errors import BadArgumentError
    from zoo.ofa import candidates, plot_search, search, specialize

    torch.manual_seed(0)
    supernet = zoo.load("ofa_mbv3_w10", num_classes=3).eval()
    settings = candidates(supernet, samples=4)
    assert len(settings) == 27 + 4 and settings[0]["label"] == "k3 e3 d2" and settings[0]["setting"]["d"] == [2] * 5
    data = [(torch.rand(8, 3, 32, 32), torch.randint(0, 3, (8,)))]
    found = search(supernet, budget=4.0e6, metric="params", data=data, samples=4, progress=False)
    best = found["best"]
    assert best["params"] <= 4.0e6 and all(r["top1"] * 8 == round(r["top1"] * 8) for r in found["results"])
    assert best["top1"] == max(r["top1"] for r in found["results"] if r["params"] <= 4.0e6)
    assert [r["params"] for r in found["pareto"]] == sorted(r["params"] for r in found["pareto"])
    assert supernet.runtime_depth == [4] * 5  # left at its largest
    assert plot_search(found, tmp_path / "search.png").stat().st_size > 0
    small = specialize(supernet, metric="params", budget=4.0e6, data=data, samples=4, progress=False)
    assert small.zoo_spec.default_kwargs["subnet"] == best["setting"]
    norm = small.first_conv.bn
    with torch.no_grad():  # its BatchNorm statistics come from the data's images, not the supernet's
        first = small.first_conv.conv(data[0][0])
    assert torch.allclose(norm.running_mean, first.mean((0, 2, 3)), atol=1e-5)
    with pytest.raises(BadArgumentError, match="no setting fits params <= 10"):
        search(supernet, budget=10, metric="params", samples=0, progress=False)
    with pytest.raises(BadArgumentError, match="budget_ms bounds latency"):
        specialize(supernet, budget_ms=5, metric="params")


def test_cli_exports_the_largest_subnetwork_within_a_latency_budget(tmp_path, capsys, monkeypatch):
    import dataclasses

    import zoo.ofa
    from zoo.cli import main as cli

    uniform = zoo.ofa.candidates  # the smallest and the largest of the uniform sub-networks, to keep the test short
    monkeypatch.setattr(zoo.ofa, "candidates", lambda model, samples=64, seed=0: uniform(model, 0, seed)[::26])
    supernet = zoo.load("ofa_mbv3_w10", num_classes=3)
    largest = sum(p.numel() for p in zoo.ofa.extract(supernet, {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}).parameters())
    supernet.zoo_spec = dataclasses.replace(supernet.zoo_spec, input_size=(3, 32, 32))  # as a 32-pixel run saves it
    zoo.save(supernet, tmp_path / "m")
    assert cli(["export", str(tmp_path / "m"), "--budget-ms", "1000", "--out", str(tmp_path / "m.onnx")]) == 0
    printed = capsys.readouterr().out
    assert f"chose depths [4, 4, 4, 4, 4] ({largest:,} params" in printed and "among 2 sub-networks" in printed
    assert (tmp_path / "m.search.png").is_file() and (tmp_path / "m.onnx").is_file()


def test_ofa_plugin_draws_subnetworks_within_its_choices_and_validates_at_the_largest():
    from types import SimpleNamespace

    from zoo.plugins.ofa import OFA

    from zoo.errors import ConfigError
    from zoo.ofa import active_setting

    supernet = zoo.load("ofa_mbv3_w10", num_classes=3)
    task = SimpleNamespace(model=supernet)
    plugin = OFA(kernels=[3, 7], expansions=[6], depths=[2, 3])
    drawn = []
    for step in range(8):
        plugin.on_train_batch_start(None, task, None, step)
        drawn.append(active_setting(supernet))
    assert {k for s in drawn for k in s["ks"]} == {3, 7} and {e for s in drawn for e in s["e"]} == {6}
    assert {d for s in drawn for d in s["d"]} == {2, 3} and len({str(s) for s in drawn}) == 8
    plugin.on_train_batch_end(None, task, None, None, 7)
    assert active_setting(supernet) == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
    images = torch.rand(4, 3, 32, 32)  # before validating, BatchNorm statistics are the largest network's on training batches
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.repeat(2, 1, 1, 1), torch.zeros(8)), batch_size=4)
    fit = SimpleNamespace(state=SimpleNamespace(fn="fit"), train_dataloader=loader)
    plugin.on_validation_epoch_start(fit, SimpleNamespace(model=supernet, eval_model=lambda: supernet, device="cpu"))
    assert supernet.first_conv.bn.num_batches_tracked == 2 and not supernet.first_conv.bn.training
    with torch.no_grad():
        stem = supernet.first_conv.conv(images)
    torch.testing.assert_close(supernet.first_conv.bn.running_mean, stem.mean((0, 2, 3)), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="plugins.ofa.depths: choose among 2, 3, 4, not \\[5\\]"):
        OFA(depths=[5])
    with pytest.raises(ConfigError, match="proxylessnas_mobile is not one"):
        OFA().setup(SimpleNamespace(global_rank=0), SimpleNamespace(model=zoo.load("proxylessnas_mobile")), "fit")
