"""Model cards and publishing: `zoo card`, the committed model_cards/ (stale check), `zoo push` through the Hub stand-in."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

import zoo
from zoo.card import BENCH_SUBDIR, card_facts, stale_facts, write_card
from zoo.cli import main as cli
from zoo.train import compose, run

CARDS = Path(__file__).resolve().parents[1] / "model_cards"
FAST = ["trainer.enable_progress_bar=false", "trainer.limit_train_batches=3", "trainer.max_epochs=1", "data.img_size=32"]
SECRET = "hf_zoo_test_token_never_printed"


def test_every_registered_model_has_a_card_and_the_index_lists_it():
    cards = {p.stem for p in CARDS.glob("*.md")} - {"README"}
    assert cards == set(zoo.list_models()), "regenerate with `zoo card --all`"
    index = (CARDS / "README.md").read_text()
    assert all(f"[{name}]({name}.md)" in index for name in cards)
    assert (CARDS / "pareto.png").is_file() and "pareto.png" in index


@pytest.mark.parametrize("name", zoo.list_models())
def test_committed_card_is_fresh(name):
    """Params, MACs, input size and licences in model_cards/NAME.md are what the code computes now."""
    stale = stale_facts(CARDS / f"{name}.md", card_facts(name))
    assert not stale, f"model_cards/{name}.md is stale (card, now): {stale}; regenerate with `zoo card --all`"
    speed = (CARDS / f"{name}.md").read_text().split("## Speed", 1)[1].split("\n## ", 1)[0]
    for row in (line for line in speed.splitlines() if line.startswith("| ") and not line.startswith("| backend")):
        assert re.search(r"\| \d{4}-\d{2}-\d{2} \|$", row), f"a latency row without its date: {row}"
    assert "Not measured yet" in speed or "On " in speed  # rows sit under the machine they were measured on


def test_stale_check_catches_a_changed_model(tmp_path):
    path = write_card("mnasnet_small", tmp_path / "card.md", bench_dirs=[])
    now = card_facts("mnasnet_small")
    assert stale_facts(path, now) == {}
    path.write_text(path.read_text().replace(f"params: {now['params']}", f"params: {now['params'] + 1}"))
    assert stale_facts(path, now) == {"params": (now["params"] + 1, now["params"])}
    assert stale_facts(path, {**now, "weights_license": "agpl-3.0"})["weights_license"] == ("apache-2.0", "agpl-3.0")


def test_committed_bench_documents_back_every_latency_in_the_cards():
    rows: dict[tuple, set[str]] = {}  # (model, backend, precision, batch) -> p50s measured (machines and threads vary)
    for path in (CARDS / BENCH_SUBDIR).glob("*.json"):
        doc = json.loads(path.read_text())
        assert {"cpu", "threads", "torch", "date"} <= set(doc["machine"])
        for r in doc["results"]:
            if "p50_ms" in r:
                rows.setdefault((r["model"], r["backend"], r.get("precision", "fp32"), r["batch"]), set()).add(f"{r['p50_ms']:.2f}")
    checked = 0
    for name in zoo.list_models():
        speed = (CARDS / f"{name}.md").read_text().split("## Speed", 1)[1].split("\n## ", 1)[0]
        for backend, precision, batch, p50 in re.findall(r"^\| (\w+) \| (\w+) \| (\d+) \| [\dx]+ \| ([\d.]+) \|", speed, re.M):
            assert p50 in rows[(name, backend, precision, int(batch))], (name, backend, precision)
            checked += 1
    assert checked > len(zoo.list_models())  # the pattern really reads the cards' rows


def test_card_of_a_name_front_matter_sections_and_reported_labels(tmp_path):
    path = write_card("yolov10n", tmp_path / "card.md", bench_dirs=[tmp_path / "no-bench"])
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["license"] == "agpl-3.0"  # the weights' licence, not the code's
    assert data["library_name"] == "efficient-zoo" and data["pipeline_tag"] == "object-detection"
    assert "detection" in data["tags"] and data["datasets"] == ["detection-datasets/coco"]
    assert data["efficient_zoo"]["code_license"] == "apache-2.0"
    for section in ("Summary and intended use", "Architecture", "Speed", "Training", "Compression", "Exports", "Limitations",
                    "Weights: provenance and licence", "Citation"):
        assert f"## {section}" in card.text, section
    assert "**38.5** (reported, arXiv:2405.14458" in card.text  # a paper number never appears unlabelled
    assert "zoo train recipe=yolov10n_shapes" in card.text and "@inproceedings{wang2024yolov10" in card.text
    assert "differs from the code's (apache-2.0)" in card.text
    assert "Not measured yet" in card.text  # no bench document: nothing invented


def test_unknown_hub_licence_is_written_as_other_with_its_name(tmp_path):
    data = ModelCard.load(write_card("mobileone_s0", tmp_path / "c.md", bench_dirs=[])).data.to_dict()
    assert data["license"] == "other" and data["license_name"] == "mobileone-license"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real (short) quickstart run, exported to verified ONNX and timed by `zoo bench`."""
    tmp = tmp_path_factory.mktemp("card_run")
    run(compose("quickstart", [f"out_dir={tmp}", *FAST]), tmp / "run")
    assert cli(["export", str(tmp / "run"), "--format", "onnx"]) == 0
    assert cli(["bench", str(tmp / "run"), "--backends", "torch", "--out", str(tmp / "bench")]) == 0
    return tmp / "run"


def test_card_of_a_run_has_its_results_recipe_exports_and_speed(trained_run, tmp_path):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert cli(["card", str(trained_run), "--out", str(tmp_path / "card.md"), "--bench-dir", str(trained_run.parent / "bench")]) == 0
    card = ModelCard.load(tmp_path / "card.md")
    (result,) = card.data.eval_results
    assert result.metric_type == "accuracy" and result.metric_value == round(summary["val_top1"], 4)
    assert result.dataset_name == "digits" and card.data.to_dict()["datasets"] == ["digits"]
    assert "zoo train recipe=quickstart" in card.text and "data.img_size=32" in card.text
    assert "| `model.onnx` | onnx | real input |" in card.text and "onnx" in card.data.tags
    speed = card.text.split("## Speed", 1)[1].split("\n## ", 1)[0]
    assert "On Intel" in speed or "On " in speed
    assert re.search(r"^\| torch \| fp32 \| 1 \| 3x32x32 \| [\d.]+ \|", speed, re.M), speed
    assert "Trained from scratch here" in card.text


def test_push_uploads_the_run_and_it_loads_back_identically(trained_run, hub, hub_env, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    code = cli(["push", str(trained_run), "--repo-id", "me/digits-mnv3", "--private", "--revision", "v1",
                "--bench-dir", str(trained_run.parent / "bench")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert SECRET not in out.out + out.err
    calls = [u["call"] for u in hub.uploads]
    assert calls[0] == "create" and "commit" in calls and hub.private["me/digits-mnv3"]
    assert all(u["headers"].get("authorization") == f"Bearer {SECRET}" for u in hub.uploads)
    (commit,) = [u for u in hub.uploads if u["call"] == "commit"]
    assert commit["revision"] == "v1"
    files = hub.repos["me/digits-mnv3"]["v1"].files
    assert set(files) == {"config.json", "model.safetensors", "README.md", "model.onnx", "model.onnx.verification.json", "recipe.yaml"}
    assert files["model.safetensors"] == (trained_run / "model" / "model.safetensors").read_bytes()
    recipe = yaml.safe_load(files["recipe.yaml"])
    assert recipe["recipe"] == "quickstart" and recipe["out_dir"] == f"<local>/{trained_run.parent.name}"
    readme = files["README.md"].decode()
    local = str(trained_run.parent)  # an absolute path of this machine: never published
    assert local not in files["recipe.yaml"].decode() and local not in readme
    assert 'zoo.load("hf-hub:me/digits-mnv3")' in readme and "license: apache-2.0" in readme
    assert "hf-hub:me/digits-mnv3@v1" in out.out

    pushed = zoo.load("hf-hub:me/digits-mnv3@v1").eval()
    local = zoo.load(str(trained_run)).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(pushed(x), local(x))
    assert pushed.zoo_spec.labels == local.zoo_spec.labels


def test_push_of_a_saved_folder_loads_back_identically(hub, hub_env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    model = zoo.load("mnasnet_small", num_classes=3).eval()
    zoo.save(model, tmp_path / "saved")
    assert cli(["push", str(tmp_path / "saved"), "--repo-id", "me/tiny", "--bench-dir", str(tmp_path / "none")]) == 0
    assert SECRET not in "".join(capsys.readouterr())
    files = hub.repos["me/tiny"]["main"].files
    assert set(files) == {"config.json", "model.safetensors", "README.md"}
    assert "A model saved with `zoo.save`" in files["README.md"].decode()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(zoo.load("hf-hub:me/tiny").eval()(x), model(x))


def test_push_without_a_token_uploads_nothing(trained_run, hub, hub_env, capsys):
    assert cli(["push", str(trained_run), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "hf auth login" in err and err.count("\n") == 1
    assert hub.uploads == []


@pytest.mark.parametrize("args, message", [
    (["--repo-id", "not a repo"], "is not ORG/NAME"),
    (["--repo-id", "me/x", "--revision", "v1"], None),
])
def test_push_rejects_bad_input_before_uploading(args, message, trained_run, hub, hub_env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    if message is None:  # a folder that is neither a run nor a zoo.save folder
        (tmp_path / "empty").mkdir()
        source, message = str(tmp_path / "empty"), "neither a `zoo train` run directory nor a `zoo.save` folder"
    else:
        source = str(trained_run)
    assert cli(["push", source, *args]) == 2
    assert message in capsys.readouterr().err
    assert not [u for u in hub.uploads if u["call"] == "commit"]


def test_card_cli_errors():
    assert cli(["card"]) == 2
    assert cli(["card", "yolov10n", "--all"]) == 2
    assert cli(["card", "not_a_model"]) == 2


def test_push_to_an_unreachable_hub_fails_in_one_line(trained_run, hub_env, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub_env._reload()
    assert cli(["push", str(trained_run), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "push to me/x at http://127.0.0.1:9 failed" in err and SECRET not in err and err.count("\n") == 1
