"""Registry: listing, lookup errors, registration rules, third-party entry points, lightness."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import pytest

import zoo
from distinfo import write_dist_info
from zoo.errors import NoPretrainedWeightsError, RegistryError, UnknownModelError, UnknownTagError
from zoo.registry import ModelSpec, Reported, register_model


# Families whose papers' numbers research could not yet retrieve (printed only in figures); they report nothing.
NO_SOURCED_NUMBERS = {"matformer": "MatViT accuracies per granularity are in the paper's figures "
                                    "(docs/sources.md, 'MatFormer: reported results')",
                      "shiftaddvit": "only the paper's abstract and introduction could be read, none of its tables "
                                     "(docs/sources.md, 'ShiftAddViT')"}
NO_SOURCED_MODELS = {
    "fastdepth": "the paper's row before NetAdapt was not read in a public source (docs/sources.md, FastDepth); its "
                 "computed size is pinned in tests/test_depth.py",
    "fastdepth_mobilenetv3_large_100": "a zoo combination (FastDepth's decoder on a zoo backbone): no paper measures it",
    "fastdepth_mobileone_s0": "a zoo combination (FastDepth's decoder on a zoo backbone): no paper measures it",
    "doclayout_yolo": "DocStructBench's results were not found in a readable source; the README's D4LA and DocLayNet "
                      "mAPs belong to other weights (docs/sources.md, DocLayout-YOLO)",
    **{f"ofa_{n}": "a supernet has no accuracy of its own; the specialised networks' reported numbers are on "
                   "ofa_flops_595m, ofa_note10_8ms and ofa_cpu_17ms" for n in ("mbv3_w10", "mbv3_w12", "proxyless_w13")},
}
# Models whose paper gives parameters but no accuracy for this exact model.
NO_SOURCED_ACCURACY = {"spiking_vgg11": "no spiking VGG-11 ImageNet result found (docs/sources.md, "
                                         "'SNN: spiking VGG results'; the VGG paper's are the ANN's)",
                       "fastvithd": "FastVLM reports its vision-language models' benchmarks, not the encoder's "
                                    "(its weights, MobileCLIP2-S3's image tower: fastvit_mci3's card)"}


def test_list_models_patterns_task_and_pretrained():
    names = zoo.list_models()
    assert names == sorted(names) and len(names) >= 25
    assert zoo.list_models("mobilenetv3*") == ["mobilenetv3_large_100", "mobilenetv3_small_100"]
    assert zoo.list_models(["mnasnet*", "semnasnet*"]) == ["mnasnet_100", "mnasnet_small", "semnasnet_100"]
    detectors = zoo.list_models(task="detection")
    assert set(detectors) >= {f"yolov10{s}" for s in "nsmblx"}
    language_models = zoo.list_models(task="language-modeling")
    assert set(language_models) >= {"matlm_nano", "matlm_mini", "matlm_small"}
    segmenters = zoo.list_models(task="segmentation")
    assert set(segmenters) >= {"lraspp_mobilenetv3_large", "semfpn_nextvit_small"}
    depth = zoo.list_models(task="depth")
    assert set(depth) >= {"fastdepth", "fastdepth_pruned"}
    assert set(zoo.list_models(task="classification")) == set(names) - set(detectors) - set(language_models) - set(segmenters) - set(depth)
    for task in ("detection", "language-modeling", "segmentation", "depth"):
        assert all(zoo.info(n).task == task for n in zoo.list_models(task=task))
    tagged = zoo.list_models("nextvit_small", pretrained=True)
    assert tagged[0] == "nextvit_small.bd_in1k" and "nextvit_small.bd_in1k_384" in tagged
    assert "mobilenetv3_large_100.miil_in21k" in zoo.list_models("*in21k", pretrained=True)
    with pytest.raises(zoo.errors.UnknownTaskError, match="valid tasks"):
        zoo.list_models(task="optical-flow")


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownModelError) as err:
        zoo.info("mobilenetv3_larg")
    assert "mobilenetv3_large_100" in str(err.value) and "zoo list" in str(err.value)
    with pytest.raises(UnknownModelError, match="efficientformer_l1"):
        zoo.load("efficientformer-l1")


def test_bad_tag_lists_valid_tags():
    with pytest.raises(UnknownTagError) as err:
        zoo.info("nextvit_small.bd_in1k_385")
    message = str(err.value)
    assert "bd_in1k, bd_in1k_384, bd_ssld_6m_in1k, bd_ssld_6m_in1k_384" in message
    assert "did you mean 'bd_in1k_384'" in message


def test_info_describes_without_weights_or_timm():
    """Describing a model reads no weights and imports no timm/safetensors/transformers. Families written here
    (YOLOv10, ...) define torch modules next to their registration, so torch itself may be imported."""
    script = textwrap.dedent(
        """
        import sys, json, zoo
        spec = zoo.info("efficientformer_l1.snap_dist_in1k")
        d = spec.to_dict()
        print(json.dumps({"heavy": sorted(m for m in ("timm", "safetensors", "lightning", "onnx", "transformers") if m in sys.modules),
                          "tag": spec.tag, "paper": d["paper"]["arxiv"], "license": spec.weight(spec.tag).license}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {"heavy": [], "tag": "snap_dist_in1k", "paper": "2206.01191", "license": "apache-2.0"}


def test_specs_are_frozen_and_carry_paper_data():
    spec = zoo.info("mobileone_s0")
    with pytest.raises(AttributeError):
        spec.num_classes = 3
    with pytest.raises(TypeError):
        spec.default_kwargs["x"] = 1
    assert pickle.loads(pickle.dumps(spec)).to_dict() == spec.to_dict()
    for name in zoo.list_models():
        s = zoo.info(name)
        assert s.paper and s.paper.arxiv and s.paper.bibtex.lstrip().startswith("@"), name
        if s.family in NO_SOURCED_NUMBERS or name in NO_SOURCED_MODELS:
            assert not s.reported, f"{name}: reported numbers are now sourced; drop the family from NO_SOURCED_NUMBERS"
        elif name in NO_SOURCED_ACCURACY:
            assert s.reported and all(r.metric == "params" for r in s.reported), name
        else:
            assert s.headline is not None and s.headline.source.startswith(("arXiv:", "tensorflow/", "github.com/", "torchvision docs")), name
        assert all(w.license for w in s.weights), name


def test_reported_rounding_follows_printed_digits():
    assert Reported("params", 5.4, "M").rounding == pytest.approx(0.05)
    assert Reported("params", 12.31, "M").rounding == pytest.approx(0.005)
    assert Reported("macs", 312, "M").rounding == pytest.approx(0.5)


def test_no_pretrained_weights_error():
    spec = ModelSpec(name="x", family="x", task="classification", builder=lambda **k: None)
    with pytest.raises(NoPretrainedWeightsError, match="pretrained=False"):
        spec.weight()


def test_register_model_rules():
    def builder(num_classes=2):
        raise AssertionError("not built")

    with pytest.raises(RegistryError, match="invalid model name"):
        register_model(name="bad.name", family="t", task="classification")(builder)
    with pytest.raises(RegistryError, match="unknown task"):
        register_model(name="ok_name", family="t", task="painting")(builder)
    with pytest.raises(RegistryError, match="Valid fields"):
        register_model(name="ok_name", family="t", task="classification", colour="red")(builder)
    with pytest.raises(RegistryError, match="already registered by zoo.models._timm"):
        register_model(name="mobilenetv3_small_100", family="t", task="classification")(builder)


def test_third_party_entry_point(tmp_path):
    """A distribution that declares a `zoo.models` entry point is listed and loadable."""
    pkg = tmp_path / "tinyzoo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            import zoo

            class TinyNet(torch.nn.Module):
                def __init__(self, num_classes=10, width=8):
                    super().__init__()
                    self.conv = torch.nn.Conv2d(3, width, 3)
                    self.classifier = torch.nn.Linear(width, num_classes)

                def forward(self, x):
                    return self.classifier(self.conv(x).mean((2, 3)))

            @zoo.register_model(family="tiny", task="classification", num_classes=10, default_kwargs={"width": 8},
                                input_size=(3, 32, 32), classifier=("classifier",))
            def tiny_net(**kwargs):
                return TinyNet(**kwargs)
            """
        )
    )
    write_dist_info(tmp_path, "tinyzoo", "zoo.models", {"tiny": "tinyzoo"})
    write_dist_info(tmp_path, "brokenzoo", "zoo.models", {"broken": "no_such_module_here"})

    script = textwrap.dedent(
        f"""
        import warnings, torch, zoo
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = zoo.list_models("tiny*")
        m = zoo.load("tiny_net", num_classes=3)
        zoo.save(m, {str(tmp_path / 'saved')!r})
        again = zoo.load({str(tmp_path / 'saved')!r})
        print(names, tuple(m(torch.randn(1, 3, 32, 32)).shape), again.zoo_spec.default_kwargs["width"],
              any("brokenzoo" in str(w.message) for w in caught))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['tiny_net'] (1, 3) 8 True"
