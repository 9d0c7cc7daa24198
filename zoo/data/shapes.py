"""``shapes``: a synthetic image dataset generated deterministically from a seed (no download).

Each image shows coloured geometric shapes on a noisy background. Classification uses one shape per
image (the class is its kind); detection (later) reuses the same renderer with several shapes and their
boxes. Sample ``i`` of split ``s`` depends only on ``(seed, s, i)``, so every process and every run sees
the same data, whatever the order of access (DDP ranks, workers).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross")


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> tuple[int, int, int]:
    while True:  # keep the shape visible against the background
        c = rng.integers(0, 256, 3)
        if np.abs(c.astype(int) - avoid.astype(int)).sum() > 180:
            return tuple(int(v) for v in c)


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, float, float, float], colour, angle: float) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        pts = [(cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
        draw.polygon(pts, fill=colour)
    elif kind == "cross":
        w = max(r / 2.5, 1.0)
        draw.rectangle((cx - w, y0, cx + w, y1), fill=colour)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=colour)
    else:
        raise ValueError(f"unknown shape {kind!r}; shapes are {', '.join(CLASSES)}")


def classification_sample(seed: int, split: str, index: int, size: int = 64) -> tuple[Image.Image, int]:
    """Image ``index`` of ``split``: one shape; the label cycles through the classes so splits are balanced."""
    rng = _rng(seed, split, index)
    label = index % len(CLASSES)
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 12, (size, size, 3))
    pixels = np.clip(background[None, None, :] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    side = rng.uniform(0.35, 0.8) * size
    x0 = rng.uniform(0, size - side)
    y0 = rng.uniform(0, size - side)
    draw_shape(ImageDraw.Draw(image), CLASSES[label], (x0, y0, x0 + side, y0 + side), _colour(rng, background), rng.uniform(0, 2 * math.pi))
    return image, label
