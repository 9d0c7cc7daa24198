"""``shapes``: a synthetic image dataset generated deterministically from a seed (no download).

Each image shows coloured geometric shapes. Classification uses one shape per image on a noisy
background (the class is its kind); detection (:func:`detection_sample`) and segmentation
(:func:`segmentation_sample`, every pixel labelled) reuse the same renderer with one to six shapes on
textured backgrounds (noise, gradients, stripes, so a detector cannot find objects by "anything that is
not flat"), with boxes and class maps measured from the drawn pixels. Sample ``i`` of split ``s``
depends only on ``(seed, s, i)``, so every process and every run sees the same data, whatever the order
of access (DDP ranks, workers).
"""
from __future__ import annotations

import math
import zlib
from typing import NamedTuple

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


# -- detection -------------------------------------------------------------------------------------

# How crowded a detection image is. "normal" is the training set; "hard" (more, smaller and more occluded shapes) is
# a held-out test of how far a detector generalises beyond what it was trained on. A new shape may overlap an
# earlier one's box by IoU `max_iou` at most and hide at most `max_hidden` of its pixels.
SCENES = {
    "normal": {"objects": (1, 6), "side": (0.10, 0.45), "max_iou": 0.3, "max_hidden": 0.15},
    "hard": {"objects": (4, 12), "side": (0.05, 0.25), "max_iou": 0.5, "max_hidden": 0.4},
}


def _textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Noise plus two linear gradients and a stripe pattern in random directions, as float ``[H, W, 3]``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    pixels = rng.uniform(40, 215, 3)[None, None, :] + rng.normal(0, 10, (size, size, 3))
    for _ in range(2):
        theta = rng.uniform(0, 2 * math.pi)
        ramp = (xx * math.cos(theta) + yy * math.sin(theta)) - 0.5
        pixels += ramp[..., None] * rng.uniform(-90, 90, 3)[None, None, :]
    theta, period = rng.uniform(0, math.pi), rng.uniform(0.08, 0.3)
    stripes = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 2 * math.pi))
    pixels += stripes[..., None] * rng.uniform(-30, 30, 3)[None, None, :]
    return np.clip(pixels, 0, 255)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


class Scene(NamedTuple):
    image: Image.Image
    boxes: np.ndarray  # [n, 4] xyxy pixels, float32
    labels: np.ndarray  # [n] int64
    colours: list[tuple[int, int, int]]  # each object's fill (tests check the boxes against the pixels)
    class_map: np.ndarray  # [H, W] uint8: 0 background, k + 1 where class k is visible (later shapes on top)


def _scene(seed: int, split: str, index: int, size: int = 128, scene: str = "normal") -> Scene:
    """The shapes of :func:`detection_sample` with everything measured from their pixels."""
    crowd = SCENES[scene]
    rng = _rng(seed, f"detection/{split}", index)  # not the classification images' stream
    background = _textured_background(rng, size)
    pixels = background.copy()
    class_map = np.zeros((size, size), np.uint8)
    wanted = int(rng.integers(crowd["objects"][0], crowd["objects"][1] + 1))
    boxes: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    labels: list[int] = []
    colours: list[tuple[int, int, int]] = []
    for _ in range(wanted * 20):  # placement tries; a crowded image keeps the objects that fit
        if len(boxes) == wanted:
            break
        label = int(rng.integers(0, len(CLASSES)))
        side = rng.uniform(*crowd["side"]) * size
        x0, y0 = rng.uniform(0, size - side), rng.uniform(0, size - side)
        angle = rng.uniform(0, 2 * math.pi)
        canvas = Image.new("L", (size, size), 0)  # draw alone first: the box is measured from real pixels
        draw_shape(ImageDraw.Draw(canvas), CLASSES[label], (x0, y0, x0 + side, y0 + side), 255, angle)
        mask = np.asarray(canvas) > 0
        ys, xs = np.nonzero(mask)
        if len(xs) < 9:
            continue
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
        if any(_box_iou(box, other) > crowd["max_iou"] for other in boxes):
            continue
        if any((m & mask).sum() > crowd["max_hidden"] * m.sum() for m in masks):  # drawn on top: it would hide them
            continue
        colour = _colour(rng, background[mask].mean(axis=0))
        pixels[mask] = colour
        class_map[mask] = label + 1
        boxes.append(box)
        masks.append(mask)
        labels.append(label)
        colours.append(colour)
    return Scene(
        Image.fromarray(pixels.astype(np.uint8), "RGB"),
        np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        np.asarray(labels, dtype=np.int64),
        colours,
        class_map,
    )


def detection_sample(seed: int, split: str, index: int, size: int = 128,
                     scene: str = "normal") -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Image ``index`` of ``split``: ``(image, boxes [n, 4] xyxy pixels float32, labels [n] int64)``.

    Boxes are the tight bounds of each shape's drawn pixels (for a triangle, its polygon as rasterised),
    so a perfect detector can reach IoU 1. A "normal" scene has 1-6 shapes of 10-45% of the side; a placement
    that overlaps an earlier box by IoU > 0.3 or hides more than 15% of an earlier shape is redrawn elsewhere.
    A "hard" one has 4-12 shapes of 5-25%, IoU up to 0.5 and up to 40% hidden (:data:`SCENES`).
    """
    image, boxes, labels, _, _ = _scene(seed, split, index, size, scene)
    return image, boxes, labels


# -- segmentation ----------------------------------------------------------------------------------

SEGMENTATION_CLASSES = ("background", *CLASSES)


def segmentation_sample(seed: int, split: str, index: int, size: int = 128,
                        scene: str = "normal") -> tuple[Image.Image, np.ndarray]:
    """Image ``index`` of ``split``: ``(image, class map [H, W] uint8)``, the detection set's image with every pixel
    labelled: 0 background, ``k + 1`` for :data:`CLASSES` ``[k]`` (:data:`SEGMENTATION_CLASSES`). The map is the
    rasterised shapes themselves, so a perfect model reaches IoU 1 on every class."""
    scene_ = _scene(seed, split, index, size, scene)
    return scene_.image, scene_.class_map


# -- captions --------------------------------------------------------------------------------------

CAPTION_COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 225), "yellow": (235, 210, 40),
                   "purple": (150, 60, 190), "orange": (245, 140, 30)}
CAPTION_PLACES = ("top left", "top right", "bottom left", "bottom right", "centre")


def caption_sample(seed: int, split: str, index: int, size: int = 64) -> tuple[Image.Image, str]:
    """Image ``index`` of ``split``: one shape of a named colour in one of five places on grey noise, and its caption
    ("a red circle at the top left", "an orange cross at the centre"): 6 colours x 4 shapes x 5 places = 120 captions, each image a random draw."""
    rng = _rng(seed, split, index)
    kind = CLASSES[int(rng.integers(len(CLASSES)))]
    colour = list(CAPTION_COLOURS)[int(rng.integers(len(CAPTION_COLOURS)))]
    place = CAPTION_PLACES[int(rng.integers(len(CAPTION_PLACES)))]
    grey = rng.integers(60, 200)
    pixels = np.clip(grey + rng.normal(0, 14, (size, size, 1)).repeat(3, 2), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    side = rng.uniform(0.3, 0.42) * size
    centre = {"top left": (0.25, 0.25), "top right": (0.75, 0.25), "bottom left": (0.25, 0.75), "bottom right": (0.75, 0.75),
              "centre": (0.5, 0.5)}[place]
    cx, cy = (c * size + rng.uniform(-0.05, 0.05) * size for c in centre)
    draw_shape(ImageDraw.Draw(image), kind, (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2),
               CAPTION_COLOURS[colour], rng.uniform(0, 2 * math.pi))
    return image, f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {kind} at the {place}"


# -- depth -----------------------------------------------------------------------------------------

DEPTH_MAX = 10.0  # metres: the far end of every scene (NYU Depth v2's range)


def depth_sample(seed: int, split: str, index: int, size: int = 128) -> tuple[Image.Image, np.ndarray]:
    """Image ``index`` of ``split``: ``(image, depth [H, W] float32 metres)`` of a room seen by a pinhole camera.

    A checkered floor recedes to a back wall; one to four shapes stand upright on the floor, each flat and facing the
    camera at a known distance. Everything follows from the camera: a floor pixel ``v`` rows below the horizon is
    ``height * focal / v`` away, and a shape ``z`` metres away stands on the floor row of depth ``z`` with a height in
    pixels of ``metres * focal / z``, so the cues a monocular model learns are the real ones (floor position, size,
    texture scale, haze). As on a robot, the camera's focal length and height are fixed (a monocular image cannot tell
    a tall camera from a near floor) and its pitch (the horizon row) varies; the floor tiles are 0.6 m. The depth map is
    exact: every pixel's own distance."""
    rng = _rng(seed, f"depth-{split}", index)
    focal = float(size)
    horizon = size * rng.uniform(0.25, 0.45)
    height = rng.uniform(1.25, 1.35)
    wall = rng.uniform(5.0, DEPTH_MAX - 0.5)
    rows = np.arange(size, dtype=np.float64)[:, None] + 0.5
    cols = np.arange(size, dtype=np.float64)[None, :] + 0.5
    below = np.maximum(rows - horizon, 1e-6)
    depth = np.broadcast_to(np.where(rows > horizon, np.minimum(height * focal / below, wall), wall), (size, size)).copy()
    floor = (rows > horizon) & (depth < wall)
    # floor: tiles of `tile` metres on the ground plane, seen in perspective
    tile = 0.6
    ground_x = (cols - size / 2) * depth / focal
    checker = ((np.floor(ground_x / tile) + np.floor(depth / tile)) % 2).astype(bool)
    tones = rng.integers(40, 220, (2, 3))
    pixels = np.where(checker[..., None], tones[0], tones[1]).astype(np.float64)
    wall_tone = rng.integers(60, 230, 3)
    stripes = 12 * np.sin(cols / size * rng.uniform(6, 20) + rng.uniform(0, 6))[..., None]
    pixels = np.where(floor[..., None], pixels, wall_tone + stripes)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        z = rng.uniform(1.2, wall - 0.3)
        metres = rng.uniform(0.35, 1.1)
        lateral = rng.uniform(-0.5, 0.5) * z * size / focal
        bottom = horizon + height * focal / z
        side = metres * focal / z
        cx = size / 2 + lateral * focal / z
        shapes.append((z, CLASSES[int(rng.integers(len(CLASSES)))], (cx - side / 2, bottom - side, cx + side / 2, bottom),
                       tuple(int(v) for v in rng.integers(0, 256, 3)), rng.uniform(0, 2 * math.pi)))
    for z, kind, box, colour, angle in sorted(shapes, key=lambda s: -s[0]):  # far first: nearer shapes cover them
        mask = Image.new("L", (size, size), 0)
        draw_shape(ImageDraw.Draw(mask), kind, box, 255, angle)
        draw_shape(ImageDraw.Draw(image), kind, box, colour, angle)
        depth[np.asarray(mask) > 0] = z
    haze = 1 - np.exp(-depth / 14.0)  # far things fade to grey, as the eye expects
    pixels = np.asarray(image, dtype=np.float64) * (1 - haze[..., None]) + 170 * haze[..., None]
    pixels += rng.normal(0, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), depth.astype(np.float32)
