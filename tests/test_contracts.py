"""Every registered model of each kind meets the contract its task, plugins and exports expect (zoo/contracts.py)."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.contracts import Detector, DistillableDetector, Elastic, HasDeployForm, Supernet

DETECTORS = zoo.list_models(task="detection")


def smallest_input(spec) -> int:
    return spec.input_size[-1] if spec.fixed_input_size else max(64, spec.min_input_size or 0)


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_returns_max_det_rows_of_six_and_has_a_criterion(name):
    spec = zoo.info(name)
    model = zoo.load(name).eval()
    assert isinstance(model, Detector)
    size = smallest_input(spec)
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    assert out.ndim == 3 and out.shape[0] == 2 and out.shape[2] == 6 and out.shape[1] >= 1
    scores, classes = out[..., 4], out[..., 5]
    assert ((scores >= 0) & (scores <= 1)).all()  # probabilities; 0 marks padding rows
    assert (classes == classes.round()).all() and classes.min() >= 0 and classes.max() < spec.num_classes
    assert callable(model.make_loss())


def test_yolov10s_are_distillable_and_have_a_deploy_form():
    """What distill's detector branch and export's deploy step rely on; the DETRs and MobileDets have neither."""
    for name in DETECTORS:
        model = zoo.load(name)
        yolo = zoo.info(name).family == "yolov10"
        assert isinstance(model, DistillableDetector) == yolo, name
        assert isinstance(model, HasDeployForm) == yolo, name
    model = zoo.load("yolov10n").eval()
    maps = model.head_outputs(torch.rand(1, 3, 64, 64))
    assert set(maps) == {"one2many", "one2one"} and [m.shape[-1] for m in maps["one2one"]] == [8, 4, 2]


@pytest.mark.parametrize("name", zoo.list_models("mat*"))
def test_every_matformer_is_elastic_and_its_granularities_shrink_the_blocks(name):
    model = zoo.load(name)
    assert isinstance(model, Elastic)
    widths = [sum(model.widths(g)) for g in ("s", "m", "l", "xl")]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    model.set_granularity("s")
    assert sum(m.width for m in model.mlps) == widths[0]


def test_other_models_claim_no_contract_they_do_not_meet():
    for name in ("mobilenetv3_small_100", "efficientformer_l1", "sew_resnet18"):
        model = zoo.load(name)
        assert not isinstance(model, (Detector, Elastic, DistillableDetector, Supernet)), name


def test_ofa_supernets_are_supernets_and_their_specialised_networks_are_not():
    pytest.importorskip("ofa")
    for name in zoo.list_models("ofa_*"):
        assert isinstance(zoo.load(name), Supernet) == ("_w1" in name), name
    assert not isinstance(zoo.load("proxylessnas_mobile"), Supernet)


def test_what_plugins_did_to_a_model_lives_in_its_zoo_state_and_follows_it_into_the_deploy_form():
    from zoo.export import deploy_form
    from zoo.registry import ModelState, state_of

    model = zoo.load("mobileone_s0", num_classes=3)
    assert state_of(model) == ModelState() and model.zoo_state is state_of(model)  # attached once, then the same
    state_of(model).pruned = True
    deploy = deploy_form(model)
    assert state_of(deploy) == ModelState(pruned=True, deploy_form=True)
    assert state_of(model) == ModelState(pruned=True)  # the original is untouched
    assert state_of(deploy_form(deploy)).deploy_form  # given again: copied as it is, still known as folded


def test_no_module_sets_a_model_attribute_other_than_its_spec_and_state():
    """Plugins, exporters and zoo.save talk through model.zoo_state only: a new ad-hoc `model.zoo_x = ...` is caught."""
    import re
    from pathlib import Path

    root = Path(zoo.__file__).resolve().parents[1]
    pattern = re.compile(r"\.zoo_(?!spec\b|state\b)\w+\s*(,[^=]*)?=[^=]")
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}" for folder in ("zoo", "plugins")
             for path in sorted((root / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)
