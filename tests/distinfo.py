"""A package installed only as metadata: a ``*.dist-info`` folder whose entry points name modules on
``PYTHONPATH``, which is all ``importlib.metadata.entry_points`` needs to discover a third-party plugin."""
from __future__ import annotations

from pathlib import Path


def write_dist_info(root: Path, name: str, group: str, entries: dict[str, str]) -> Path:
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (dist / "entry_points.txt").write_text(f"[{group}]\n{lines}")
    return dist
