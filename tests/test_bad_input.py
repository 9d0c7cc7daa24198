"""Bad input, as a new user or an attacker gives it: every case is one line that names the problem (CLI: exit 2, no
traceback; API: the zoo's own error type), and nothing is written outside where it belongs.

Each CLI case runs the real ``zoo`` entry point in a fresh working folder that must still be empty afterwards (no
``runs/``, no ``exports/``, no half-written file). docs/security.md summarises this matrix."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import main as cli
from zoo.errors import BadArgumentError, ConfigError, DataError, SourceError, WeightsError, ZooError
from zoo.registry import state_of

QUICK = ["trainer.enable_progress_bar=false", "trainer.limit_train_batches=4", "trainer.max_epochs=1", "data.img_size=32"]

# (command line, what the one line must say). Run in an empty folder, which must stay empty.
CLI_CASES = {
    # training configuration
    "train-epochs-not-a-number": (["train", "recipe=quickstart", "trainer.max_epochs=abc"], r"trainer\.max_epochs='abc': must be a whole number"),
    "train-zero-epochs": (["train", "recipe=quickstart", "trainer.max_epochs=0"], r"trainer\.max_epochs=0: must be a whole number >= 1"),
    "train-forever": (["train", "recipe=quickstart", "trainer.max_epochs=-1"], r"trains forever unless trainer\.max_steps"),
    "train-negative-lr": (["train", "recipe=quickstart", "optim.lr=-1"], r"optim\.lr=-1: must be a number"),
    "train-nan-lr": (["train", "recipe=quickstart", "optim.lr=nan"], r"optim\.lr=nan: must be a number"),
    "train-unknown-schedule": (["train", "recipe=quickstart", "optim.schedule=step"], r"optim\.schedule='step': must be cosine or poly"),
    "train-zero-batch": (["train", "recipe=quickstart", "data.batch_size=0"], r"data\.batch_size=0: must be a whole number >= 1"),
    "train-fractional-batch": (["train", "recipe=quickstart", "data.batch_size=2.5"], r"data\.batch_size=2\.5"),
    "train-negative-seed": (["train", "recipe=quickstart", "seed=-3"], r"seed=-3"),
    "train-unknown-accelerator": (["train", "recipe=quickstart", "trainer.accelerator=tpu9"], r"Lightning refused the trainer settings: .*tpu9"),
    "train-unknown-key": (["train", "recipe=quickstart", "nosuchkey=1"], r"unknown config key 'nosuchkey'"),
    "train-misspelt-key": (["train", "recipe=quickstart", "optim.lrr=0.1"], r"did you mean 'optim\.lr'"),
    "train-unknown-recipe": (["train", "recipe=nosuch"], r"unknown recipe 'nosuch'"),
    "train-no-recipe": (["train", "optim.lr=0.1"], r"say which recipe to train"),
    "train-unknown-model": (["train", "recipe=quickstart", "model.name=resnet9000"], r"unknown model 'resnet9000'"),
    "train-unknown-data": (["train", "recipe=quickstart", "data=imagenet77"], r"imagenet77"),
    "train-unknown-plugin": (["train", "recipe=quickstart", "plugins=[quantum]"], r"unknown plugin 'quantum'"),
    "train-detector-in-classifier-recipe": (["train", "recipe=quickstart", "model.name=yolov10n"], r"yolov10n is a detection model"),
    "train-resume-missing": (["train", "recipe=quickstart", "resume=nowhere.ckpt", *QUICK], r"resume=nowhere\.ckpt: no checkpoint"),
    "train-resume-last-none": (["train", "recipe=quickstart", "resume=last", *QUICK], r"resume=last: no earlier run"),
    "train-missing-folder": (["train", "recipe=quickstart", "data=folder", "data.root=/nonexistent/flowers", *QUICK], r"/nonexistent/flowers"),
    # evaluation
    "eval-unknown-key": (["eval", "mobilenetv3_small_100", "data=digits", "bogus.key=1"], r"Could not override 'bogus\.key'"),
    "eval-unknown-data": (["eval", "mobilenetv3_small_100", "data=nosuchdata"], r"nosuchdata"),
    "eval-unknown-model": (["eval", "mobilenet_v9", "data=digits"], r"unknown model 'mobilenet_v9'"),
    "eval-missing-folder": (["eval", "./no/such/run", "data=digits"], r"no/such/run"),
    # export
    "export-negative-imgsz": (["export", "mobilenetv3_small_100", "--imgsz", "-5"], r"--imgsz must be a whole number of pixels >= 1"),
    "export-imgsz-too-small": (["export", "dfine_n", "--imgsz", "8"], r"--imgsz must be a whole number of pixels >= \d+ for dfine_n"),
    "export-fixed-size": (["export", "efficientformer_l1", "--imgsz", "256"], r"fixed input size of 224x224"),
    "export-unknown-format": (["export", "mobilenetv3_small_100", "--format", "tflite2"], r"unknown export format 'tflite2'"),
    "export-unknown-precision": (["export", "mobilenetv3_small_100", "--precision", "fp8"], r"onnx exports fp32.*not 'fp8'"),
    "export-int8-without-data": (["export", "mobilenetv3_small_100", "--precision", "int8"], r"int8 needs calibration data: `zoo quantize"),
    "export-coreml-not-mlpackage": (["export", "mobilenetv3_small_100", "--format", "coreml", "--out", "m.coreml"], r"give a path ending in \.mlpackage"),
    "export-bad-batch": (["export", "mobilenetv3_small_100", "--batch", "0"], r"batch must be >= 1"),
    "export-dynamic-executorch": (["export", "mobilenetv3_small_100", "--format", "executorch", "--dynamic"], r"executorch exports a fixed batch"),
    "export-text-model-to-openvino": (["export", "matlm_nano", "--format", "openvino"], r"matlm_nano is a language model"),
    # quantize
    "quantize-zero-calibration": (["quantize", "mobilenetv3_small_100", "--data", "digits", "--calib", "0"], r"--calib must be at least 1"),
    "quantize-unknown-format": (["quantize", "mobilenetv3_small_100", "--data", "digits", "--format", "coreml"], r"zoo quantize writes onnx"),
    # names, tags, Hub sources
    "info-unknown-tag": (["info", "mobileone_s0.imagenet"], r"Valid tags: apple_in1k"),
    "info-hub-revision-escapes": (["eval", "hf-hub:org/name@../../../../tmp/x", "data=digits"], r"malformed Hub revision '\.\./"),
    "info-hub-revision-absolute": (["eval", "hf-hub:org/name@/etc/passwd", "data=digits"], r"malformed Hub revision '/etc/passwd'"),
    "hub-repo-escapes": (["eval", "hf-hub:../x", "data=digits"], r"malformed model source"),
    "push-revision-escapes": (["push", ".", "--repo-id", "me/model", "--revision", "../../x"], r"malformed Hub revision"),
    "push-bad-repo-id": (["push", ".", "--repo-id", "me/../x"], r"repo id 'me/\.\./x' is not ORG/NAME"),
    "predict-missing-image": (["predict", "yolov10n", "nope.jpg", "--out", "preds"], r"nope\.jpg"),
    "card-neither": (["card"], r"give one NAME_OR_RUN, or --all"),
    "bench-unknown-backend": (["bench", "mobilenetv3_small_100", "--backends", "tensorflow"], r"tensorflow"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    import re

    argv, message = CLI_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if argv[0] == "push":
        monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
        (work / "config.json").write_text("{}")  # push checks its arguments before reading the folder
    assert cli(argv) == 2, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"zoo {argv[0]}: error: "), err
    assert re.search(message, err), f"{case}: {err}"
    left = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.name != "config.json")
    assert left == [], f"{case} left {left}"


def test_cli_bad_input_in_a_real_process_prints_no_traceback(tmp_path):
    """The installed entry point, as a user runs it: one stderr line, exit 2; --debug shows the traceback."""
    cmd = [sys.executable, "-m", "zoo.cli", "train", "recipe=quickstart", "trainer.max_epochs=abc"]
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert plain.returncode == 2 and plain.stderr.strip().splitlines() == [
        "zoo train: error: trainer.max_epochs='abc': must be a whole number >= 1 (or None, -1)"]
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_failure_is_one_line_with_the_debug_hint(monkeypatch, capsys):
    import zoo.cli

    def broken(args):
        raise RuntimeError("something the zoo did not expect")

    monkeypatch.setattr(zoo.cli, "_cmd_list", broken)
    assert cli(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("zoo list: internal error: RuntimeError: something the zoo did not expect (rerun with --debug for "
                   "the traceback, and please report it)")
    with pytest.raises(RuntimeError, match="did not expect"):
        cli(["list", "--debug"])


def test_export_to_a_folder_or_under_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "afile").write_text("x")
    assert cli(["export", "mobilenetv3_small_100", "--out", str(tmp_path / "taken")]) == 2
    assert "is a folder; give the path of the file to write" in capsys.readouterr().err
    assert cli(["export", "mobilenetv3_small_100", "--out", str(tmp_path / "afile" / "m.onnx")]) == 2
    assert f"{tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "taken"] and not any((tmp_path / "taken").iterdir())


@pytest.mark.parametrize("revision", ["../../../../tmp/x", "/abs", "-rf", "a..b", "a//b", "main.lock", "x" * 200, "a b"])
def test_hub_revisions_that_could_leave_the_cache_are_refused(revision):
    from zoo.hub import parse_hf_hub

    with pytest.raises(SourceError, match="malformed Hub revision"):
        parse_hf_hub(f"hf-hub:org/name@{revision}")
    with pytest.raises(SourceError, match="malformed Hub revision"):
        zoo.load(f"hf-hub:org/name@{revision}")


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/3", "a" * 40, "release_2026-01"])
def test_ordinary_hub_revisions_pass(revision):
    from zoo.hub import parse_hf_hub

    assert parse_hf_hub(f"hf-hub:org/name@{revision}") == ("org/name", revision)


def test_unknown_builder_arguments_are_the_zoos_error():
    with pytest.raises(BadArgumentError, match="mobilenetv3_small_100: cannot build with arguments .*bogus_kwarg"):
        zoo.load("mobilenetv3_small_100", bogus_kwarg=1)


def test_save_refuses_nan_weights_and_writes_nothing(tmp_path):
    model = zoo.load("mobilenetv3_small_100", num_classes=3)
    with torch.no_grad():
        next(model.parameters())[0].fill_(math.nan)
    with pytest.raises(WeightsError, match="hold NaN or inf .*nothing was written"):
        zoo.save(model, tmp_path / "saved")
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").iterdir())


def test_a_diverged_run_stops_with_one_line_and_saves_no_model(tmp_path):
    """optim.lr=1e30: the loss turns NaN within a few steps; the run stops there, names the step and the learning
    rate, and writes no model/ (zoo.save would refuse it anyway) and no folder with nothing in it."""
    from zoo.errors import TrainingDivergedError
    from zoo.train import compose, run

    cfg = compose("quickstart", ["optim.lr=1e30", *QUICK, "early_stopping.nonfinite_steps=2"])
    with pytest.raises(TrainingDivergedError, match=r"NaN or inf for 2 consecutive steps up to step \d+ .*optim\.lr=1e\+30"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "model").exists()


def test_run_folders_started_in_the_same_second_differ(tmp_path):
    """Two runs of one recipe started in the same second (two processes: each claims its folder with mkdir)."""
    from zoo import _io

    first = _io.new_run_dir(tmp_path / "quickstart")
    assert _io.new_run_dir(tmp_path / "quickstart") == first  # Hydra resolving the path twice gets the same one
    _io._CLAIMED.clear()  # what a second process starts with
    second = _io.new_run_dir(tmp_path / "quickstart")
    assert second != first and Path(first).is_dir() and Path(second).is_dir()
    if Path(second).name[:19] == Path(first).name[:19]:  # the same second: a suffix, not a shared folder
        assert Path(second).name == Path(first).name + "-2"
    _io._CLAIMED.clear()


def test_benchmark_tables_replace_only_their_own_readme_section(tmp_path):
    """What the benchmarks write into README: the named section's old table goes, everything else stays; a README
    without the section gets a ZooError naming the markers, and nothing is written."""
    import numpy as np

    from zoo import _io
    from zoo.errors import ZooError

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- speed:start -->\nold\n<!-- speed:end -->\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    _io.fill_marked_section(readme, "speed", "| a |\n|---|\n")
    assert readme.read_text() == ("intro\n<!-- speed:start -->\n| a |\n|---|\n<!-- speed:end -->\n"
                                  "<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    before = readme.read_text()
    with pytest.raises(ZooError, match="no '<!-- missing:start --> ... <!-- missing:end -->' block"):
        _io.fill_marked_section(readme, "missing", "x")
    assert readme.read_text() == before
    path = _io.atomic_write_json(tmp_path / "out" / "rows.json", {"ms": np.float32(1.5), "n": np.int64(3)})
    assert path.read_text() == '{\n  "ms": 1.5,\n  "n": 3\n}\n'
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        _io.atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()


def test_processes_of_one_multi_node_launch_agree_on_their_run_folder(tmp_path, monkeypatch):
    """Every node names the run folder itself; by the clock they would differ, so a launch's job id names it."""
    from zoo import _io

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "81234")
    folders = []
    for rank in ("0", "3"):  # two processes, as on two nodes
        monkeypatch.setenv("RANK", rank)
        _io._CLAIMED.clear()
        folders.append(_io.new_run_dir(tmp_path / "quickstart"))
    assert folders[0] == folders[1] == str(tmp_path / "quickstart" / "job-81234")
    monkeypatch.setenv("SLURM_JOB_ID", "../../x")  # a job id never leaves the recipe's folder
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    _io._CLAIMED.clear()
    with pytest.raises(ConfigError, match=r"process 3 of 4 cannot know the run folder .* same hydra\.run\.dir=DIR"):
        _io.new_run_dir(tmp_path / "quickstart")
    monkeypatch.setenv("RANK", "0")  # rank 0 decides by the clock, as a single process does
    assert Path(_io.new_run_dir(tmp_path / "other")).name.startswith("20")
    _io._CLAIMED.clear()


def test_the_cli_keeps_a_users_own_run_folder(tmp_path):
    """A failed run removes only a folder it made itself."""
    from zoo.train import _drop_if_empty

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    _drop_if_empty(mine)
    assert (mine / "notes.txt").read_text() == "keep"


def test_config_errors_are_the_zoos_own_type():
    from zoo.config import check_values, compose

    with pytest.raises(ConfigError, match="optim.lr"):
        check_values(compose("quickstart", ["optim.lr=0"]))
    assert issubclass(ConfigError, ZooError) and os.environ.get("ZOO_DEBUG") in (None, "", "0")


def _yolo_set(root: Path, labels: dict[str, str] | None) -> Path:
    from PIL import Image

    (root / "images" / "train").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (32, 24), (90, 120, 150)).save(root / "images" / "train" / f"{name}.png")
    if labels is not None:
        (root / "labels" / "train").mkdir(parents=True)
        for name, text in labels.items():
            (root / "labels" / "train" / f"{name}.txt").write_text(text)
    return root


@pytest.mark.parametrize(("labels", "message"), [
    (None, r"YOLO label folder .*labels/train does not exist, so every image would count as empty"),
    ({"a": "7 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0 0.3\n"}, r"no usable boxes in its 2 image\(s\); 2 label\(s\) were dropped, the first in .*a\.txt line 1: unknown class id 7"),
    ({"a": "", "b": ""}, r"no usable boxes in its 2 image\(s\)\. Check the labels"),
])
def test_a_detection_set_without_usable_boxes_is_an_error(tmp_path, labels, message):
    import warnings

    from zoo.data.detection import load_yolo_split
    from zoo.errors import DataError

    root = _yolo_set(tmp_path / "set", labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=message):
            load_yolo_split(root, "train", num_classes=2)


def test_save_replaces_only_its_own_folder_as_a_whole(tmp_path):
    from zoo.api import CONFIG_NAME, WEIGHTS_NAME

    model = zoo.load("mnasnet_small", num_classes=3)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(BadArgumentError, match="was not written by zoo.save; it is left as it is"):
        zoo.save(model, theirs)
    assert (theirs / "config.json").read_text() == '{"model_type": "bert"}' and sorted(p.name for p in theirs.iterdir()) == ["config.json"]
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "notes.txt").write_text("mine")
    with pytest.raises(BadArgumentError, match=r"holds other files \(notes\.txt\)"):
        zoo.save(model, crowded)

    mine = tmp_path / "mine"
    zoo.save(model, mine)
    (tmp_path / ".mine.switch-new-leftover").mkdir()  # what an interrupted save leaves beside the folder
    (mine / "export").mkdir()  # what zoo export and zoo card write into a saved folder stays with it
    (mine / "export" / "model.onnx").write_bytes(b"onnx")
    (mine / "README.md").write_text("card")
    relabelled = zoo.load("mnasnet_small", labels=["a", "b", "c"])
    zoo.save(relabelled, mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crowded", "mine", "theirs"]
    assert sorted(p.name for p in mine.iterdir()) == sorted([CONFIG_NAME, "README.md", "export", WEIGHTS_NAME])
    assert (mine / "export" / "model.onnx").read_bytes() == b"onnx" and (mine / "README.md").read_text() == "card"
    assert zoo.load(str(mine)).zoo_spec.labels == ("a", "b", "c")


@pytest.fixture(scope="module")
def pruned_folder(tmp_path_factory) -> Path:
    """A zoo.save folder with a structure record (a model narrowed the way pruning narrows it)."""
    from torch import nn

    model = zoo.load("mnasnet_small", num_classes=3)
    model.classifier = nn.Linear(model.classifier.in_features, 3)  # same widths; the record is what counts
    state_of(model).pruned = True
    folder = tmp_path_factory.mktemp("pruned") / "model"
    zoo.save(model, folder)
    return folder


TAMPERED = {  # what a crafted config.json tries -> what the one line says
    "unknown-key": (lambda c: c.update(trust_remote_code=True), r"unknown keys \['trust_remote_code'\]"),
    "huge-classes": (lambda c: c.update(num_classes=200000 * 200000, labels=None), r"num_classes .* is not a whole number"),
    "labels-not-names": (lambda c: c.update(labels=[1, 2, 3]), r"labels must be a list of names"),
    "labels-miscounted": (lambda c: c.update(labels=["a", "b"]), r"labels must be a list of names, one per class"),
    "kwargs-private": (lambda c: c.update(model_kwargs={"__class__": "x"}), r"model_kwargs must map argument names"),
    "kwargs-object": (lambda c: c.update(model_kwargs={"drop_rate": {"__reduce__": "os.system"}}), r"model_kwargs must map"),
    "bad-input-size": (lambda c: c["preprocessing"].update(input_size=[3, 200000, 200000]), r"input_size .* is not \[channels"),
    "zero-std": (lambda c: c["preprocessing"].update(std=[0, 0, 0]), r"std .* above 0"),
    "crop-out-of-range": (lambda c: c["preprocessing"].update(crop_pct=7), r"crop_pct 7 is not in \(0, 1\]"),
    "preprocessing-extra": (lambda c: c["preprocessing"].update(loader="pickle"), r"preprocessing has keys other than"),
    "tag-path": (lambda c: c.update(tag="../../x"), r"tag '\.\./\.\./x' is not a weights tag name"),
    "quantization-unknown": (lambda c: c.update(quantization={"method": "exec"}), r"quantization"),
    "structure-not-records": (lambda c: c.update(structure={"conv_stem": "rm -rf"}), r"structure must map module names"),
}

TAMPERED_STRUCTURE = {  # structure records that name real modules but ask for what pruning never does
    "batchnorm-eps": (lambda s: s["bn1"].setdefault("attrs", {}).update(eps=1000.0), r"sets bn1\.eps .* may only narrow"),
    "forward": (lambda s: s["bn1"].setdefault("attrs", {}).update(forward="print"), r"sets bn1\.forward"),
    "wider": (lambda s: s["conv_stem"]["shapes"].update(weight=[200000, 200000, 3, 3]), r"conv_stem\.weight the shape \[200000"),
    "new-tensor": (lambda s: s["conv_stem"]["shapes"].update(payload=[4]), r"conv_stem\.payload"),
    "wider-attr": (lambda s: s["conv_stem"]["attrs"].update(out_channels=10**9), r"sets conv_stem\.out_channels"),
}


def _tampered(folder: Path, tmp_path: Path, change) -> Path:
    import json
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    change(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_config_json_is_refused_before_anything_is_built(case, pruned_folder, tmp_path):
    import re

    change, message = TAMPERED[case]
    with pytest.raises(SourceError, match="config.json is not one zoo.save writes") as info:
        zoo.load(str(_tampered(pruned_folder, tmp_path, change)))
    assert re.search(message, str(info.value)), str(info.value)


@pytest.mark.parametrize("case", sorted(TAMPERED_STRUCTURE))
def test_a_structure_record_may_only_narrow_what_the_architecture_has(case, pruned_folder, tmp_path):
    change, message = TAMPERED_STRUCTURE[case]
    with pytest.raises(WeightsError, match=message):
        zoo.load(str(_tampered(pruned_folder, tmp_path, lambda c: change(c["structure"]))))


def test_an_untampered_structure_loads(pruned_folder):
    assert zoo.load(str(pruned_folder)).zoo_spec.num_classes == 3


def test_resume_last_takes_the_newest_run_that_fits_or_says_why_none_does(tmp_path):
    import yaml

    from zoo.train import _resume_path, compose

    def fake_run(name: str, model: str, plugins: dict | None = None) -> Path:
        run_dir = tmp_path / "quickstart" / name
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"name": model}, "plugins": plugins or {}}))
        return run_dir / "checkpoints" / "last.ckpt"

    fitting = fake_run("2026-01-01_10-00-00", "mobilenetv3_small_100")
    fake_run("2026-01-01_11-00-00", "mobileone_s0")
    fake_run("2026-01-01_11-00-00-2", "mobilenetv3_small_100", {"qat": {}})
    cfg = compose("quickstart", [f"out_dir={tmp_path}", "resume=last"])
    assert _resume_path(cfg) == str(fitting)
    cfg = compose("quickstart", [f"out_dir={tmp_path}", "resume=last", "model.name=mnasnet_small"])
    with pytest.raises(ConfigError, match=r"no run of 'quickstart' trained mnasnet_small with plugins none \(2026-01-01_11-00-00-2: "
                                          r"mobilenetv3_small_100 with plugins \['qat'\]; 2026-01-01_11-00-00: mobileone_s0"):
        _resume_path(cfg)


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        raise DataError(f"image {index}.png cannot be read: truncated file")


@pytest.fixture
def sigchld_as_it_was():
    """A DataLoader with workers installs a Python SIGCHLD handler for the life of the process (torch's worker
    watchdog). Left in the test process, a later child's exit (ExecuTorch's flatc, after the runtimes had set up
    their own signal stacks) was delivered where the kernel could not build the handler's frame: a SIGSEGV that
    killed the whole suite with no traceback. The test puts the process's handler back."""
    import signal

    from torch.utils.data._utils import signal_handling

    before, was_set = signal.getsignal(signal.SIGCHLD), signal_handling._SIGCHLD_handler_set
    yield
    signal.signal(signal.SIGCHLD, before)
    signal_handling._SIGCHLD_handler_set = was_set


def test_an_error_in_a_dataloader_worker_is_one_line_without_the_workers_traceback(capsys, sigchld_as_it_was):
    from zoo.cli import _guarded

    batches = iter(torch.utils.data.DataLoader(_Unreadable(), num_workers=1))
    try:
        assert _guarded("train", lambda: next(batches), debug=False) == 2
    finally:
        batches._shutdown_workers()  # now, not whenever the garbage collector reaches the traceback's cycle
    err = capsys.readouterr().err.strip()
    assert err == "zoo train: error: image 0.png cannot be read: truncated file (DataError in DataLoader worker process 0)"


def test_a_folder_with_one_class_is_a_data_error(tmp_path, capsys):
    from PIL import Image

    for split in ("train", "val"):
        (tmp_path / "set" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(tmp_path / "set" / split / "cat" / "a.png")
    assert cli(["eval", "mobilenetv3_small_100", "data=folder", f"data.root={tmp_path / 'set'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the folder data has 1 class (cat); a classifier needs at least 2 (one folder per class under train/ and val/)"), err
