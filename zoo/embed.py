"""``zoo embed``: L2-normalised embeddings of a folder of images or a text file, written to one file.

An image-text model (``mobileclip*``) embeds images with its image tower and texts (one per line) with its text
tower, into one joint space: rows of an image file and a text file compare by dot product. Any other classifier
embeds images as its pooled features (``num_classes=0``). The output is ``.safetensors`` (``embeddings`` [N, D],
with the model, the kind and every item's name in its metadata) or ``.npy`` (the array, with ``<stem>.json``
beside it naming the items in row order), written atomically.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo._io import atomic_write, atomic_write_json
from zoo.errors import BadArgumentError, DataError

SUFFIXES = (".safetensors", ".npy")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")


def embed(source: Any, inputs: str | os.PathLike, out: str | os.PathLike, *, batch_size: int = 32,
          progress: bool | None = None) -> dict[str, Any]:
    """Embed every image in the folder ``inputs`` (sorted by name), or every non-empty line of the text file ``inputs``,
    with the model ``source`` (a model from :func:`zoo.load`, or anything it accepts); write them to ``out``.

    Returns ``{"kind", "count", "dim", "out", "items"}``."""
    out, inputs = Path(out).expanduser(), Path(inputs).expanduser()
    if out.suffix not in SUFFIXES:
        raise BadArgumentError(f"--out must end in {' or '.join(SUFFIXES)}, not {out.name!r}")
    if batch_size < 1:
        raise BadArgumentError(f"batch_size must be >= 1, not {batch_size}")
    if inputs.is_dir():
        kind = "image"
        items = sorted(str(p) for p in inputs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not items:
            raise DataError(f"{inputs} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    elif inputs.is_file():
        kind = "text"
        items = [line.strip() for line in inputs.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not items:
            raise DataError(f"{inputs} holds no text: one text per line")
    else:
        raise DataError(f"{inputs} does not exist: give a folder of images or a text file with one text per line")
    model = _embedder(source, kind)
    rows = _embed_all(model, kind, items, batch_size, progress)
    name = model.zoo_spec.name + (f".{model.zoo_spec.tag}" if model.zoo_spec.tag else "")
    listed = [Path(p).name for p in items] if kind == "image" else items
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = {"model": name, "kind": kind, "items": json.dumps(listed)}
        atomic_write(out, lambda tmp: save_file({"embeddings": rows.contiguous()}, tmp, metadata=metadata))
    else:
        atomic_write(out, lambda tmp: _save_npy(tmp, rows))
        atomic_write_json(out.with_suffix(".json"), {"model": name, "kind": kind, "items": listed})
    return {"kind": kind, "count": len(items), "dim": int(rows.shape[1]), "out": str(out), "items": listed}


def _save_npy(path: str, rows: torch.Tensor) -> None:
    import numpy as np

    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a name
        np.save(f, rows.numpy())


def _embedder(source: Any, kind: str):
    """The model without a classifier (pooled features, or an image-text model's embeddings)."""
    import zoo

    model = zoo.load(source, num_classes=0) if isinstance(source, (str, os.PathLike)) else source
    if kind == "text" and not callable(getattr(model, "encode_text", None)):
        raise BadArgumentError(f"{model.zoo_spec.name} has no text tower; texts need an image-text model (mobileclip*)")
    if model.zoo_spec.task != "classification":
        raise BadArgumentError(f"{model.zoo_spec.name} is a {model.zoo_spec.task} model; embed takes image classifiers and image-text models")
    return model.eval()


def _embed_all(model, kind: str, items: Sequence[str], batch_size: int, progress: bool | None) -> torch.Tensor:
    from rich.progress import track

    from zoo.data.classification import eval_transform, open_image

    transform = eval_transform(model.zoo_spec.preprocessing()) if kind == "image" else None
    starts = range(0, len(items), batch_size)
    show = len(starts) > 1 if progress is None else progress
    rows = []
    with torch.no_grad():
        for start in track(starts, description=f"embedding {len(items)} {kind}s") if show else starts:
            batch = items[start:start + batch_size]
            if kind == "text":
                rows.append(model.encode_text(model.tokenize(batch)))
                continue
            x = torch.stack([transform(open_image(p).convert("RGB")) for p in batch])
            features = model.encode_image(x) if callable(getattr(model, "encode_image", None)) else model(x)
            rows.append(torch.nn.functional.normalize(features.float().flatten(1), dim=-1))
    return torch.cat(rows).float().cpu()
