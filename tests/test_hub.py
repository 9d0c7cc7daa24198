"""zoo.load against a local Hub stand-in: downloads, cache, offline mode, damage, revisions, round trip."""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import zoo
from zoo.errors import CorruptWeightsError, HubError, SourceError, WeightsError

ARCH, TAG = "mobilenetv3_small_100", "lamb_in1k"
REPO = f"timm/{ARCH}.{TAG}"


def reference_state_dict(seed: int = 0, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = zoo.load(ARCH, num_classes=num_classes)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def served() -> dict[str, torch.Tensor]:
    return reference_state_dict(seed=1)


@pytest.fixture
def published(hub, served):
    hub.add(REPO, {"model.safetensors": safetensors_bytes(served)})
    return hub


def assert_same_weights(model, state_dict) -> None:
    own = model.state_dict()
    assert own.keys() == state_dict.keys()
    for k, v in state_dict.items():
        assert torch.equal(own[k], v), k


def cached_files(hub_env) -> list:
    return sorted(p for p in hub_env.cache.rglob("*") if p.is_file() or p.is_symlink())


def test_first_download_then_cache_hit(hub_env, published, served):
    model = zoo.load(ARCH, pretrained=True)
    assert_same_weights(model, served)
    assert published.count("GET", REPO, "model.safetensors") == 1
    assert model.zoo_spec.tag == TAG and model.zoo_spec.num_classes == 1000

    again = zoo.load(f"{ARCH}.{TAG}", pretrained=True)
    assert_same_weights(again, served)
    assert published.count("GET", REPO, "model.safetensors") == 1  # served from the cache


def test_offline_mode_uses_cache_and_sends_nothing(hub_env, published, served):
    zoo.load(ARCH, pretrained=True)
    before = sum(published.requests.values())
    hub_env.offline()
    model = zoo.load(ARCH, pretrained=True)
    assert_same_weights(model, served)
    assert sum(published.requests.values()) == before


def test_offline_without_cache_is_a_clear_error(hub_env, published):
    hub_env.offline()
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        zoo.load(ARCH, pretrained=True)
    assert published.count("GET") == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bitflip"])
def test_damaged_download_is_refused_and_not_cached(hub_env, published, served, damage):
    good = published.repos[REPO]["main"].files["model.safetensors"]
    if damage == "truncated":  # a cut transfer: the ETag (SHA-256) no longer matches
        published.damage[(REPO, "model.safetensors")] = good[: len(good) // 2]
    elif damage == "bitflip":  # same size, still valid safetensors: only the checksum can tell
        flipped = bytearray(good)
        flipped[-7] ^= 0x10
        published.damage[(REPO, "model.safetensors")] = bytes(flipped)
    else:  # bytes that are not safetensors at all, under a non-LFS ETag (no checksum to compare)
        published.lfs_etags = False
        published.damage[(REPO, "model.safetensors")] = b"\x00" * 64
    with pytest.raises(CorruptWeightsError, match="removed from the cache"):
        zoo.load(ARCH, pretrained=True)
    assert not [p for p in cached_files(hub_env) if "blobs" in p.parts or "snapshots" in p.parts]

    published.damage.clear()  # the next load downloads again and succeeds
    model = zoo.load(ARCH, pretrained=True)
    assert_same_weights(model, served)
    assert published.count("GET", REPO, "model.safetensors") == 2


def test_unknown_repo_revision_and_file_errors(hub_env, published, tmp_path):
    with pytest.raises(HubError, match="not found"):
        zoo.load("hf-hub:someone/missing")
    published.add("org/only-config", {"config.json": b'{"format": "efficient-zoo", "architecture": "mobilenetv3_small_100"}'})
    with pytest.raises(HubError, match="no file 'model.safetensors'"):
        zoo.load("hf-hub:org/only-config")
    with pytest.raises(HubError, match="no revision 'v9'"):
        zoo.load("hf-hub:org/only-config@v9")


@pytest.mark.parametrize("bad", ["hf-hub:", "hf-hub:noslash", "hf-hub:a/b/c", "hf-hub:org/name@", "hf-hub:/name"])
def test_malformed_hf_hub_source(bad):
    with pytest.raises(SourceError, match=r"hf-hub:ORG/NAME"):
        zoo.load(bad)


def test_head_mismatch_resets_with_warning(hub_env, published, served):
    with pytest.warns(UserWarning, match=r"head \(classifier\) reset: the model has 7 classes, .* have 1000"):
        model = zoo.load(ARCH, pretrained=True, num_classes=7)
    assert model.zoo_spec.num_classes == 7
    own = model.state_dict()
    assert own["classifier.weight"].shape == (7, 1024)
    for k, v in served.items():  # everything but the head came from the weights
        if not k.startswith("classifier."):
            assert torch.equal(own[k], v), k
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)

    with pytest.warns(UserWarning, match="head"):
        backbone = zoo.load(ARCH, pretrained=True, num_classes=0)  # no classifier: pooled features
    assert backbone(torch.randn(1, 3, 64, 64)).shape == (1, 1024)
    with pytest.raises(zoo.errors.ZooError, match="num_classes must be"):
        zoo.load(ARCH, num_classes=-1)


def test_local_weights_head_mismatch_without_num_classes_is_an_error(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(reference_state_dict(num_classes=5)))
    with pytest.raises(WeightsError, match="pass num_classes=5"):
        zoo.load(ARCH, weights=path)
    model = zoo.load(ARCH, weights=path, num_classes=5)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_weights_that_do_not_fit_are_never_half_loaded(tmp_path):
    state = reference_state_dict(seed=3)
    key = "conv_stem.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    path = tmp_path / "bad.safetensors"
    path.write_bytes(safetensors_bytes(state))
    torch.manual_seed(0)
    fresh = zoo.load(ARCH)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(WeightsError, match="nothing was loaded.*conv_stem.weight"):
        zoo.weights.apply_state_dict(fresh, state, head=("classifier",), source="bad.safetensors")
    assert_same_weights(fresh, before)


def test_pickles_need_the_opt_in_and_load_weights_only(tmp_path):
    state = reference_state_dict(seed=4)
    path = tmp_path / "official.pth"
    torch.save({"model": state, "epoch": 3}, path)
    with pytest.raises(zoo.errors.UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load(ARCH, weights=path)
    model = zoo.load(ARCH, weights=path, allow_pickle=True)
    assert_same_weights(model, state)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"model": state, "payload": Evil()}, buf)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(buf.getvalue())
    with pytest.raises(zoo.errors.UnsafeWeightsError, match="weights_only"):
        zoo.load(ARCH, weights=evil, allow_pickle=True)


def test_foreign_or_damaged_config_is_refused_and_not_cached(hub_env, hub, tmp_path):
    hub.add("timm/some-model", {"config.json": b'{"architecture": "mobilenetv3_small_100"}', "model.safetensors": b"x"})
    with pytest.raises(SourceError, match="neither zoo.save's .*, timm's .* nor transformers'"):
        zoo.load("hf-hub:timm/some-model")
    zoo.save(zoo.load(ARCH, num_classes=2), tmp_path / "m")
    files = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    hub.add("me/m", files)
    hub.damage[("me/m", "config.json")] = b"{" + b" " * (len(files["config.json"]) - 1)  # same size, not JSON
    with pytest.raises(CorruptWeightsError, match="removed from the cache"):
        zoo.load("hf-hub:me/m")
    hub.damage.clear()
    assert zoo.load("hf-hub:me/m").zoo_spec.num_classes == 2


def test_save_push_load_round_trip_and_revision_pinning(hub_env, hub, tmp_path):
    torch.manual_seed(5)
    model = zoo.load(ARCH, num_classes=3).eval()
    model.zoo_spec = dataclasses.replace(model.zoo_spec, labels=("cat", "dog", "eel"))
    folder = zoo.save(model, tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    hub.add("me/tiny-mnv3", files)  # "v1" keeps these weights, main moves on
    hub.add("me/tiny-mnv3", files, revision="v1")
    torch.manual_seed(6)
    newer = zoo.load(ARCH, num_classes=3)
    zoo.save(newer, tmp_path / "newer")
    hub.add("me/tiny-mnv3", {p.name: p.read_bytes() for p in (tmp_path / "newer").iterdir()})

    x = torch.randn(2, 3, 96, 96)
    loaded = zoo.load("hf-hub:me/tiny-mnv3@v1").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.zoo_spec.labels == ("cat", "dog", "eel")
    assert loaded.zoo_spec.num_classes == 3
    latest = zoo.load("hf-hub:me/tiny-mnv3").eval()
    assert_same_weights(latest, newer.state_dict())
    commit = hub.repos["me/tiny-mnv3"]["v1"].commit  # a commit hash pins as well as a tag
    assert_same_weights(zoo.load(f"hf-hub:me/tiny-mnv3@{commit}"), model.state_dict())

    headless = zoo.load(ARCH, num_classes=0)  # a backbone without classifier round-trips too
    zoo.save(headless, tmp_path / "headless")
    assert zoo.load(tmp_path / "headless").zoo_spec.num_classes == 0

    local = zoo.load(tmp_path / "saved").eval()  # and straight from the folder
    with torch.no_grad():
        torch.testing.assert_close(local(x), model(x), rtol=0, atol=0)
    run_dir = tmp_path / "runs" / "exp"  # a run directory keeps its model in model/
    zoo.save(model, run_dir / "model")
    assert_same_weights(zoo.load(str(run_dir)), model.state_dict())
    with pytest.raises(SourceError, match="not a folder written by zoo.save"):
        zoo.load(str(tmp_path / "runs"))
    with pytest.raises(SourceError, match="weights="):
        zoo.load(str(folder / "model.safetensors"))
    with pytest.raises(SourceError, match="hf-hub:me/not-here"):
        zoo.load("me/not-here")


def test_fresh_process_reads_hf_variables(hub_env, published, served, tmp_path):
    """The real path a user takes: variables set before Python starts, no reloads; HF_HUB_CACHE moves the cache
    away from HF_HOME's."""
    script = textwrap.dedent(
        f"""
        import json, zoo
        m = zoo.load("{ARCH}", pretrained=True)
        print(json.dumps({{"tag": m.zoo_spec.tag, "sum": float(sum(p.double().sum() for p in m.state_dict().values()))}}))
        """
    )
    elsewhere = tmp_path / "elsewhere"
    env = {"PATH": "/usr/bin:/bin", **hub_env.env(), "HF_HUB_CACHE": str(elsewhere)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tag"] == TAG
    assert result["sum"] == pytest.approx(float(sum(v.double().sum() for v in served.values())))
    assert published.count("GET", REPO, "model.safetensors") == 1
    assert [p.name for p in elsewhere.rglob("model.safetensors")] == ["model.safetensors"]  # the snapshot's link
    assert not hub_env.cache.exists() or not list(hub_env.cache.rglob("model.safetensors"))


def test_a_failing_server_is_named_as_the_cause(hub_env, published, monkeypatch):
    import time
    import types

    import huggingface_hub.utils._http as http

    waits = []  # huggingface_hub's own backoff between retries, counted instead of waited (its time module only)
    clock = {k: getattr(time, k) for k in dir(time) if not k.startswith("_")}
    monkeypatch.setattr(http, "time", types.SimpleNamespace(**{**clock, "sleep": waits.append}))
    published.fail_status = 503
    with pytest.raises(HubError, match=r"the server answered HTTP 503 \(its own failure; try again later"):
        zoo.load(ARCH, pretrained=True)
    assert waits  # the 5xx was retried before it was reported


def test_a_commit_that_would_leave_the_cache_is_not_followed(hub_env, published, tmp_path):
    """A mirror that answers with a crafted commit hash: whatever huggingface_hub makes of it, nothing outside the
    Hub cache is used or left behind."""
    published.commit_header = "../../../../" + "x" * 28  # 40 characters, like a real commit
    outside = tmp_path  # HF_HOME is tmp_path/hf_home; the crafted commit points four levels above the snapshots
    before = {p for p in outside.rglob("*") if not p.is_relative_to(hub_env.cache)}
    with pytest.raises(HubError, match="malformed commit or file name"):
        zoo.load(ARCH, pretrained=True)
    after = {p for p in outside.rglob("*") if not p.is_relative_to(hub_env.cache)}
    assert after == before, sorted(map(str, after - before))
