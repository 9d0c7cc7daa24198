"""The `zoo` command line: list, info, errors, and the installed console script."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import main


def test_list_table(capsys):
    assert main(["list", "mobileone*"]) == 0
    out = capsys.readouterr().out
    for column in ("name", "task", "params", "MACs", "input", "reported", "weights licence"):
        assert column in out
    assert "mobileone_s0" in out and "mobileone-license" in out and "2.1M" in out and "top1 71.4%" in out
    assert "efficientformer" not in out


def test_list_pretrained_json_and_task(capsys):
    assert main(["list", "nextvit_small", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows][:2] == ["nextvit_small.bd_in1k", "nextvit_small.bd_in1k_384"]
    assert rows[1]["input"] == "384x384"
    assert main(["list", "--task", "classification", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 25


def test_list_nothing_matches(capsys):
    assert main(["list", "resnet*"]) == 1
    assert "no models match 'resnet*'" in capsys.readouterr().err


def test_info_text_and_json(capsys):
    assert main(["info", "fastvit_mci0"]) == 0
    out = capsys.readouterr().out
    assert "apple/mobileclip_s0_timm" in out and "apple-amlr" in out and "@inproceedings{vasu2024mobileclip" in out
    assert "zeroshot_top1" in out and "not measured here" in out
    assert main(["info", "mobilenetv3_large_100.miil_in21k", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tag"] == "miil_in21k" and data["num_classes"] == 11221
    assert data["paper"]["url"] == "https://arxiv.org/abs/1905.02244"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["info", "efficientformer_l2"], "Closest registered names: efficientformer_l7, efficientformer_l3, efficientformer_l1"),
        (["info", "mobileone_s0.imagenet"], "Valid tags: apple_in1k"),
        (["list", "--task", "optical-flow"], "valid tasks: classification"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and err.startswith(f"zoo {argv[0]}: error:")


def test_console_script_help_shows_examples():
    beside = Path(sys.executable).with_name("zoo")  # the venv's bin/, activated or not
    exe = str(beside) if beside.exists() else shutil.which("zoo")
    assert exe, "the `zoo` console script should be installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "list" in out.stdout and "info" in out.stdout
    out = subprocess.run([exe, "list", "--help"], capture_output=True, text=True, timeout=60)
    assert "examples:" in out.stdout and "zoo list 'mobile*' --pretrained" in out.stdout
    bad = subprocess.run([exe, "info", "nope_net"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown model 'nope_net'" in bad.stderr
