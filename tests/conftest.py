"""Shared fixtures: a local Hub stand-in and an isolated Hugging Face environment."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from hub_standin import HubStandIn, Server

REPO_ROOT = Path(__file__).resolve().parents[1]


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
