"""The wheel built by `pip install .` carries recipes, conf and plugins under `zoo` and works anywhere."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("efficient_zoo-*.whl")
    return path


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"zoo"}
    for expected in ("zoo/__init__.py", "zoo/plugins/__init__.py", "zoo/recipes/__init__.py", "zoo/conf/__init__.py",
                     "zoo/models/nas_mobile.py"):
        assert expected in names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "zoo = zoo.cli:main" in meta
    # every module and YAML the repository has under zoo/, plugins/, recipes/ and conf/ is in the wheel
    for folder, package in (("zoo", "zoo"), ("plugins", "zoo/plugins"), ("recipes", "zoo/recipes"), ("conf", "zoo/conf")):
        for suffix in ("*.py", "*.yaml"):
            for path in (REPO_ROOT / folder).rglob(suffix):
                if "__pycache__" not in path.parts:
                    assert f"{package}/{path.relative_to(REPO_ROOT / folder).as_posix()}" in names


def test_installed_wheel_works_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    script = (
        "import zoo, zoo.plugins, zoo.recipes, zoo.conf, torch; "
        "m = zoo.load('mobilenetv3_small_100', num_classes=4).eval(); "
        "print(zoo.__file__); print(tuple(m(torch.randn(1, 3, 64, 64)).shape))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    location, shape = out.stdout.strip().splitlines()
    assert location.startswith(str(target)) and shape == "(1, 4)"
    assert not (target / "plugins").exists() and not (target / "recipes").exists() and not (target / "conf").exists()
