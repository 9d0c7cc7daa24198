"""``doc_pages``: synthetic document pages with layout boxes, generated deterministically from a seed (no download).

Each page is white paper with DocStructBench's ten layout classes (:data:`zoo.labels.DOCSTRUCTBENCH_CLASSES`) laid
out the way papers, textbooks and reports are: a running header and page number (``abandon``), a title, paragraphs
of text in one or two columns (``plain text``), figures (plots, pictures) with captions below, tables (ruled grids
of numbers) with captions above and sometimes footnotes below, display formulas with their numbers at the right
(``isolate_formula``, ``formula_caption``), and section headings (``title``). The words are random letter strings in
Pillow's built-in font; what a detector must learn is the layout, as on real pages. Every box is the tight bound of
its block's drawn ink. Page ``i`` of split ``s`` depends only on ``(seed, s, i)``, like the shapes.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.data.shapes import _rng
from zoo.labels import DOCSTRUCTBENCH_CLASSES

TITLE, TEXT, ABANDON, FIGURE, FIGURE_CAPTION, TABLE, TABLE_CAPTION, TABLE_FOOTNOTE, FORMULA, FORMULA_CAPTION = range(10)
assert DOCSTRUCTBENCH_CLASSES[FORMULA_CAPTION] == "formula_caption"
_LETTERS = "etaoinshrdlucmfwypvbgkqjxz"
_FREQUENCIES = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5,
                         1.0, 0.8, 0.8, 0.2, 0.2, 0.2, 0.1])
_FORMULA_SYMBOLS = ["x", "y", "z", "a", "b", "=", "+", "-", "(", ")", "2", "n", "k", "i", "/", "<", "1", "0", "f", "e"]


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _words(rng: np.random.Generator, count: int) -> list[str]:
    lengths = rng.integers(1, 10, count)
    letters = "".join(_LETTERS[i] for i in rng.choice(len(_LETTERS), size=int(lengths.sum()), p=_FREQUENCIES / _FREQUENCIES.sum()))
    ends = np.cumsum(lengths)
    return [letters[end - n:end] for n, end in zip(lengths, ends)]


class _Page:
    """A page being written: the image, the boxes so far, and ink-tight measuring of what is drawn."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng = size, rng
        paper = int(rng.integers(236, 256))
        self.image = Image.new("RGB", (size, size), (paper, paper, int(rng.integers(226, 256))))
        self.draw = ImageDraw.Draw(self.image)
        self.ink = tuple(int(v) for v in rng.integers(0, 60, 3))
        self.boxes: list[tuple[float, float, float, float]] = []
        self.labels: list[int] = []

    def text_line(self, x: float, y: float, text: str, size: int,
                  width: float | None = None) -> tuple[float, float, float, float] | None:
        """Draw ``text`` from ``(x, y)``, cut to ``width`` pixels; its ink box (None when nothing fits)."""
        font = _font(size)
        if width is not None and font.getlength(text) > width:  # the most words that fit, by bisection
            words = text.split(" ")
            low, high = 0, len(words)
            while low < high:
                mid = (low + high + 1) // 2
                low, high = (mid, high) if font.getlength(" ".join(words[:mid])) <= width else (low, mid - 1)
            text = " ".join(words[:low])
        if not text:
            return None
        self.draw.text((x, y), text, font=font, fill=self.ink)
        return self.draw.textbbox((x, y), text, font=font)

    def add(self, label: int, boxes: list) -> None:
        boxes = [b for b in boxes if b is not None]
        if boxes:
            x0, y0 = max(min(b[0] for b in boxes), 0), max(min(b[1] for b in boxes), 0)
            x1, y1 = min(max(b[2] for b in boxes), self.size), min(max(b[3] for b in boxes), self.size)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                self.boxes.append((x0, y0, x1, y1))
                self.labels.append(label)


def _paragraph(page: _Page, x: float, y: float, width: float, size: int, lines: int) -> float:
    line_height, drawn = size * 1.35, []
    for i in range(lines):
        last = i == lines - 1
        indent = size * 1.5 if i == 0 and page.rng.random() < 0.5 else 0
        text = " ".join(_words(page.rng, 20))
        limit = width - indent - (page.rng.uniform(0.2, 0.6) * width if last else 0)
        drawn.append(page.text_line(x + indent, y + i * line_height, text, size, limit))
    page.add(TEXT, drawn)
    return y + lines * line_height


def _figure(page: _Page, x: float, y: float, width: float, height: float) -> None:
    rng, draw = page.rng, page.draw
    if rng.random() < 0.5:  # a plot: axes, a few curves
        draw.line([(x, y), (x, y + height), (x + width, y + height)], fill=page.ink, width=1)
        for _ in range(int(rng.integers(1, 4))):
            colour = tuple(int(v) for v in rng.integers(0, 200, 3))
            phase, freq, amp = rng.uniform(0, 6), rng.uniform(0.5, 3), rng.uniform(0.15, 0.45)
            pts = [(x + 2 + t * (width - 4), y + height * (0.5 - amp * math.sin(phase + freq * 6.28 * t)))
                   for t in np.linspace(0, 1, 40)]
            draw.line(pts, fill=colour, width=1)
        page.add(FIGURE, [(x, y, x + width + 1, y + height + 1)])
    else:  # a picture: a filled frame with a gradient and blobs
        yy, xx = np.mgrid[0:int(height), 0:int(width)].astype(np.float32)
        base = rng.uniform(40, 220, 3)
        pixels = base + (xx[..., None] / max(width, 1)) * rng.uniform(-80, 80, 3) + (yy[..., None] / max(height, 1)) * rng.uniform(-80, 80, 3)
        picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        blobs = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(2, 6))):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.3) * min(width, height)
            blobs.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        page.image.paste(picture, (int(x), int(y)))
        page.add(FIGURE, [(int(x), int(y), int(x) + picture.width, int(y) + picture.height)])


def _table(page: _Page, x: float, y: float, width: float, rows: int, cols: int, size: int) -> float:
    row_height, drawn = size * 1.6, []
    draw = page.draw
    bottom = y + rows * row_height
    for r in range(rows + 1):
        if r in (0, 1, rows) or page.rng.random() < 0.3:  # booktabs-style rules, sometimes every row
            draw.line([(x, y + r * row_height), (x + width, y + r * row_height)], fill=page.ink, width=1)
    for r in range(rows):
        for c in range(cols):
            cell = _words(page.rng, 1)[0][:6] if r == 0 or c == 0 else f"{page.rng.uniform(0, 100):.1f}"
            drawn.append(page.text_line(x + 2 + c * width / cols, y + r * row_height + size * 0.25, cell, size, width / cols - 3))
    page.add(TABLE, [*drawn, (x, y, x + width + 1, bottom + 1)])
    return bottom


def _formula(page: _Page, x: float, y: float, width: float, size: int, number: int) -> float:
    symbols = page.rng.choice(_FORMULA_SYMBOLS, size=int(page.rng.integers(5, 14)))
    text = " ".join(symbols)
    text_width = page.draw.textlength(text, font=_font(size + 1))
    page.add(FORMULA, [page.text_line(x + (width - text_width) / 2, y, text, size + 1, width * 0.8)])
    page.add(FORMULA_CAPTION, [page.text_line(x + width - size * 2.2, y, f"({number})", size)])
    return y + size * 2.0


def page_sample(seed: int, split: str, index: int, size: int = 320) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Page ``index`` of ``split``: ``(image, boxes [n, 4] xyxy pixels float32, labels [n] int64)``."""
    rng = _rng(seed, f"doc_pages/{split}", index)
    page = _Page(size, rng)
    margin, small = size * rng.uniform(0.05, 0.09), max(int(size / 42), 6)
    left, right, bottom = margin, size - margin, size - margin
    if rng.random() < 0.7:  # running header and page number
        page.add(ABANDON, [page.text_line(left, margin * 0.35, " ".join(_words(rng, 8)), small - 1, (right - left) * 0.6)])
        page.add(ABANDON, [page.text_line(size / 2, bottom + margin * 0.3, str(int(rng.integers(1, 400))), small - 1)])
    y = margin
    if rng.random() < 0.6:
        y = _title_lines(page, left, y, right - left, int(small * rng.uniform(1.6, 2.2)), int(rng.integers(1, 3)))
    columns = 1 if rng.random() < 0.4 else 2
    gap = size * 0.04
    width = (right - left - gap * (columns - 1)) / columns
    figure_number = formula_number = 1
    for column in range(columns):
        x, cursor = left + column * (width + gap), y + small
        for _ in range(12):
            kind = rng.choice(["text", "text", "text", "figure", "table", "formula", "heading"])
            room = bottom - cursor
            if kind == "figure" and room > width * 0.35 + small * 4:
                height = min(width * rng.uniform(0.35, 0.7), room - small * 4)  # its caption fits below
                _figure(page, x + width * 0.05, cursor, width * 0.9, height)
                cursor += height + small * 0.5
                caption = f"Figure {figure_number}: " + " ".join(_words(rng, 20))
                lines = [page.text_line(x, cursor + i * small * 1.3, caption if i == 0 else " ".join(_words(rng, 20)), small - 1, width)
                         for i in range(int(rng.integers(1, 3)))]
                page.add(FIGURE_CAPTION, lines)
                cursor += len(lines) * small * 1.3 + small
                figure_number += 1
            elif kind == "table" and room > small * 12:
                page.add(TABLE_CAPTION, [page.text_line(x, cursor, f"Table {figure_number}: " + " ".join(_words(rng, 12)), small - 1, width)])
                cursor += small * 1.6
                rows = int(min(rng.integers(3, 8), (room - small * 5) // (small * 1.6)))
                cursor = _table(page, x, cursor, width, rows, int(rng.integers(2, 6)), small - 1) + small * 0.4
                if rng.random() < 0.4:
                    page.add(TABLE_FOOTNOTE, [page.text_line(x, cursor, "* " + " ".join(_words(rng, 14)), small - 2, width)])
                    cursor += small * 1.3
                cursor += small
                figure_number += 1
            elif kind == "formula" and room > small * 3:
                cursor = _formula(page, x, cursor, width, small, formula_number) + small * 0.3
                formula_number += 1
            elif kind == "heading" and room > small * 5:
                cursor = _title_lines(page, x, cursor, width, int(small * 1.3), 1) + small * 0.3
            elif room > small * 3:
                lines = int(min(rng.integers(2, 9), room // (small * 1.35)))
                cursor = _paragraph(page, x, cursor, width, small, lines) + small * 0.8
            else:
                break
    boxes = np.asarray(page.boxes, dtype=np.float32).reshape(-1, 4)
    return page.image, boxes, np.asarray(page.labels, dtype=np.int64)


def _title_lines(page: _Page, x: float, y: float, width: float, size: int, lines: int) -> float:
    drawn = [page.text_line(x, y + i * size * 1.25, " ".join(_words(page.rng, 8)).title(), size, width * page.rng.uniform(0.5, 1.0))
             for i in range(lines)]
    page.add(TITLE, drawn)
    return y + lines * size * 1.25 + size * 0.5
