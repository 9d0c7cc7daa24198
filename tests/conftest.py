"""Shared fixtures: a local Hub stand-in, an isolated Hugging Face environment, and the trained runs several
test files read (each trained once per session: training is the suite's most expensive step)."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_standin import HubStandIn, Server

REPO_ROOT = Path(__file__).resolve().parents[1]

# README's test command runs two pytest-xdist workers. Each gets its share of the cores (torch, onnxruntime,
# OpenVINO and LiteRT default to every core, and two workers spinning on the same cores run slower than one),
# set before torch starts its thread pool and inherited by the subprocesses the tests start.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(THREADS)
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session", autouse=True)
def _absl_writes_to_the_current_stderr():
    """absl's log handler (absl comes in with litert-torch and friends) keeps the sys.stderr of the moment it was
    made, and closes that stream when logging is reconfigured (Hydra does it for every `zoo train` job) unless it is
    the sys.stderr of that moment. Under pytest those differ (each test's captured stream), and closing pytest's own
    capture stream ends the session. Outside pytest sys.stderr never changes, so only the tests need this."""
    from zoo.export.litert import _follow_stderr

    _follow_stderr()


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """An in-process `zoo train` runs Hydra's job, which points the root logger at that test's captured stdout and at
    the run folder's train.log; put every logger's handlers back after each test, so that nothing later writes to a
    stream pytest has closed or a folder a failed run removed."""
    import logging

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = {lg: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers}
    yield
    for lg in [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]:
        handlers, level, propagate, disabled = saved.get(lg, ([], lg.level, lg.propagate, lg.disabled))
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


@pytest.fixture
def hub() -> HubStandIn:
    """A Hub stand-in on 127.0.0.1 (see hub_standin.py); publish files with ``hub.add``."""
    with Server() as stand_in:
        yield stand_in


class HubEnv:
    """The environment a fresh process would see: HF_ENDPOINT -> the stand-in, HF_HOME -> a temp dir.

    ``huggingface_hub`` reads these variables at import, so after changing them we reload its
    constants, exactly as a new process would compute them.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str) -> None:
        self.monkeypatch, self.home, self.endpoint = monkeypatch, home, endpoint
        for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        self._reload()

    @property
    def cache(self) -> Path:
        return self.home / "hub"

    def offline(self, on: bool = True) -> None:
        if on:
            self.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        else:
            self.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        self._reload()

    def env(self) -> dict[str, str]:
        """Variables for a subprocess that should see the same Hub."""
        keep = ("HF_HOME", "HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE")
        return {k: os.environ[k] for k in keep if k in os.environ}

    @staticmethod
    def _reload() -> None:
        import huggingface_hub.constants

        importlib.reload(huggingface_hub.constants)


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub: HubStandIn):
    env = HubEnv(monkeypatch, tmp_path / "hf_home", hub.url)
    yield env
    monkeypatch.undo()
    HubEnv._reload()


@pytest.fixture
def python() -> str:
    return sys.executable


def once_per_session(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)`` once per test session, however many pytest-xdist workers ask (xdist's documented pattern: a
    file lock in the temp folder the session's workers share); returns that folder, which the tests only read."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".made").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died while making it
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


def own_copy(tmp_path_factory, folder: Path) -> Path:
    """A copy of a shared folder for this worker's tests to write into (evaluations, exports, cards)."""
    copy = tmp_path_factory.mktemp(folder.name) / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".made"))
    return copy


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> dict:
    """`zoo quickstart` as README's first command runs it (a subprocess, the real recipe): its output and run dir."""

    def make(out: Path) -> None:
        zoo = str(Path(sys.executable).with_name("zoo"))
        started = time.perf_counter()
        proc = subprocess.run([zoo, "quickstart", "--out-dir", str(out), "--no-progress"], capture_output=True, text=True, cwd=out)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        (out / "fixture.json").write_text(json.dumps({"stdout": proc.stdout, "elapsed": time.perf_counter() - started}))

    out = once_per_session(tmp_path_factory, "quickstart", make)
    (run_dir,) = (out / "quickstart").iterdir()
    return {**json.loads((out / "fixture.json").read_text()), "run_dir": run_dir}


@pytest.fixture(scope="session")
def quickstart_run(quickstart, tmp_path_factory) -> Path:
    """A trained classifier (MobileNetV3-Small on digits, 64 px, ~98% top-1): a copy of the quickstart's run dir."""
    return own_copy(tmp_path_factory, quickstart["run_dir"])


DETECTION_TINY = ["trainer.enable_progress_bar=false", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
                  "data.train_images=16", "data.val_images=8", "data.image_size=64", "data.img_size=64", "data.batch_size=8"]


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory) -> Path:
    """A tiny yolov10n_shapes run (one epoch on 16 images at 64 px): a detector run dir, not a good detector."""

    def make(tmp: Path) -> None:
        from zoo.train import compose, run

        summary = run(compose("yolov10n_shapes", [f"out_dir={tmp}", *DETECTION_TINY]), tmp / "run")
        assert summary["task"] == "detection" and 0.0 <= summary["val_map"] <= summary["val_map50"] <= 1.0

    return own_copy(tmp_path_factory, once_per_session(tmp_path_factory, "detection", make) / "run")


# A test may use this much CPU time (its own and its finished subprocesses', so a loaded machine does not trip it:
# 2 threads busy for 120 s) unless it is marked @pytest.mark.slow(reason="why it cannot be smaller").
CPU_BUDGET_S = float(os.environ.get("ZOO_TEST_CPU_BUDGET_S", "240"))


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    started = _cpu_seconds()
    yield
    item.user_properties.append(("cpu_s", _cpu_seconds() - started))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    used = dict(item.user_properties).get("cpu_s", 0.0)
    marker = item.get_closest_marker("slow")
    if used > CPU_BUDGET_S and not (marker and marker.kwargs.get("reason")):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} used {used:.0f} s of CPU, over the suite's {CPU_BUDGET_S:.0f} s per test: make it "
                           "smaller (share a fixture, a smaller input) or mark it @pytest.mark.slow(reason=...)")
