"""The second zoo's data families, unlike the first zoo's shapes32 and digits16: any size from 24 to 64 px, 1 or 3
channels, 10 to 43 classes, drawn per model. All images are float32 NCHW in [0, 1]; labels int64.

- ``glyphs``: letters and digits rendered from the DejaVu TrueType fonts of Debian's fonts-dejavu-core (PIL's
  built-in font where none is installed), with random font, affine jitter, stroke thickening or thinning and colours.
- ``textures``: procedural textures (gratings, plaids, dot lattices) whose class is the kind, orientation and
  frequency; phase, contrast, colours and noise vary.
- ``scenes``: one large object (ten outlines) in a cluttered scene of small distractors, lines and a gradient sky.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from scanner.errors import UsageError
from scanner.zoo.warp import random_affine, resize

SPLIT_STREAMS = {"train": 11, "test": 12, "clean": 13}
GLYPH_CHARACTERS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabdefghnrt"  # 44: classes take the first K
FONT_DIRECTORY = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
              "DejaVuSansCondensed-Oblique.ttf", "DejaVuSerif-Italic.ttf")  # fmt: skip
SCENE_OBJECTS = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ellipse", "arrow", "crescent")


@dataclass(frozen=True)
class DataFamily:
    name: str
    min_classes: int
    max_classes: int
    channels: tuple[int, ...]


DATA_FAMILIES: dict[str, DataFamily] = {
    "glyphs": DataFamily("glyphs", 10, 43, (1, 3)),
    "textures": DataFamily("textures", 10, 18, (1, 3)),
    "scenes": DataFamily("scenes", 10, 10, (3, 1)),
}


def data_family(name: str) -> DataFamily:
    try:
        return DATA_FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown data family {name!r}", hint=f"choose one of: {', '.join(DATA_FAMILIES)}") from None


def make_images(
    family: str, n: int, *, size: int, channels: int, num_classes: int, split: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`n` labelled images, balanced over `num_classes` classes; `split` picks a disjoint random stream."""
    spec = data_family(family)
    if not spec.min_classes <= num_classes <= spec.max_classes:
        raise UsageError(
            f"{family} has {spec.min_classes} to {spec.max_classes} classes; asked for {num_classes}",
            hint="draw the class count within the family's range",
        )
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], size, channels, num_classes, 0x2D])
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    render = {"glyphs": _glyphs, "textures": _textures, "scenes": _scenes}[family]
    x = render(y, rng, size, channels, num_classes)
    return np.clip(x, 0, 1).astype(np.float32), y


def _colourise(mask: np.ndarray, rng: np.random.Generator, channels: int) -> np.ndarray:
    """Masks in [0, 1] (N, H, W) to images: random background and a foreground that differs from it clearly."""
    n = len(mask)
    background = rng.uniform(0, 1, (n, channels)).astype(np.float32)
    offset = rng.uniform(0.4, 0.8, (n, channels)).astype(np.float32)
    foreground = np.where(background < 0.5, np.minimum(background + offset, 1), np.maximum(background - offset, 0))
    if channels == 1:
        foreground = np.where(np.abs(foreground - background) < 0.3, 1 - background, foreground)
    m = mask[:, None].astype(np.float32)
    images: np.ndarray = background[:, :, None, None] * (1 - m) + foreground[:, :, None, None] * m
    return images


# ---- glyphs ----------------------------------------------------------------------------------------------------


@cache
def _glyph_bitmaps(num_classes: int, resolution: int) -> np.ndarray:
    """(fonts, classes, resolution, resolution) glyph masks in [0, 1], each centred."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = [FONT_DIRECTORY / name for name in FONT_FILES if (FONT_DIRECTORY / name).exists()]
    loaded: list[Any] = [ImageFont.truetype(str(path), int(resolution * 0.8)) for path in fonts] or [
        ImageFont.load_default()
    ]
    out = np.zeros((len(loaded), num_classes, resolution, resolution), dtype=np.float32)
    for f, font in enumerate(loaded):
        for c, character in enumerate(GLYPH_CHARACTERS[:num_classes]):
            image = Image.new("L", (resolution, resolution), 0)
            draw = ImageDraw.Draw(image)
            left, top, right, bottom = draw.textbbox((0, 0), character, font=font)
            position = ((resolution - (right - left)) / 2 - left, (resolution - (bottom - top)) / 2 - top)
            draw.text(position, character, fill=255, font=font)
            out[f, c] = np.asarray(image, dtype=np.float32) / 255.0
    return out


@cache
def _stroked_bitmaps(num_classes: int, resolution: int) -> np.ndarray:
    """(3, fonts, classes, resolution, resolution): the glyphs as drawn, thickened (max over 3x3) and thinned (min).
    Strokes change at the drawing's resolution, before any resize: thinning a 24 px glyph (2 px strokes) erased most
    of it."""
    masks = _glyph_bitmaps(num_classes, resolution)
    padded = np.pad(masks, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="constant")
    shifted = np.stack([padded[:, :, r : r + resolution, c : c + resolution] for r in range(3) for c in range(3)])
    return np.stack([masks, shifted.max(0), shifted.min(0)])


def _glyphs(y: np.ndarray, rng: np.random.Generator, size: int, channels: int, num_classes: int) -> np.ndarray:
    bitmaps = _stroked_bitmaps(num_classes, 64)
    fonts = rng.integers(0, bitmaps.shape[1], len(y))
    strokes = rng.integers(0, 3, len(y))  # as drawn, thicker or thinner
    masks = resize(bitmaps[strokes, fonts, y][:, None], size, size)
    masks = random_affine(masks, rng, shift=size * 0.08, degrees=15.0, scale=0.15)[:, 0]
    x = _colourise(np.clip(masks, 0, 1), rng, channels)
    return x + rng.normal(0, 0.03, x.shape).astype(np.float32)


# ---- textures --------------------------------------------------------------------------------------------------


def _textures(y: np.ndarray, rng: np.random.Generator, size: int, channels: int, num_classes: int) -> np.ndarray:
    n = len(y)
    kinds = y % 3  # grating, plaid, dot lattice
    orientation_steps = -(-num_classes // 3)
    # A plaid or a dot lattice turned by 90 degrees is itself: those turn within a quarter turn, gratings a half.
    turn = np.where(kinds == 0, np.pi, np.pi / 2)
    angle = (y // 3) * turn / orientation_steps + rng.normal(0, 0.04, n)
    periods = size / np.where((y // 3) % 2 == 0, 4.0, 7.0) * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0, 2 * np.pi, (2, n))
    grid = np.arange(size, dtype=np.float32)
    rows, cols = grid[None, :, None], grid[None, None, :]
    a = angle[:, None, None]
    along = (np.cos(a) * cols + np.sin(a) * rows) * 2 * np.pi / periods[:, None, None]
    across = (-np.sin(a) * cols + np.cos(a) * rows) * 2 * np.pi / periods[:, None, None]
    first = np.sin(along + phase[0][:, None, None])
    second = np.sin(across + phase[1][:, None, None])
    value = np.where(
        (kinds == 0)[:, None, None],
        first,
        np.where((kinds == 1)[:, None, None], (first + second) / 2, ((first > 0.4) & (second > 0.4)) * 2.0 - 1.0),
    )
    masks = (value * rng.uniform(0.35, 0.5, n)[:, None, None] + 0.5).astype(np.float32)
    x = _colourise(masks, rng, channels)
    return x + rng.normal(0, 0.05, x.shape).astype(np.float32)


# ---- scenes ----------------------------------------------------------------------------------------------------


def _polygon(kind: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    def ring(count: int, radii: tuple[float, ...]) -> list[tuple[float, float]]:
        points = []
        for i in range(count * len(radii)):
            angle = turn + 2 * np.pi * i / (count * len(radii))
            radius = r * radii[i % len(radii)]
            points.append((cx + radius * np.cos(angle), cy + radius * np.sin(angle)))
        return points

    if kind == "triangle":
        return ring(3, (1.0,))
    if kind == "square":
        return ring(4, (1.0,))
    if kind == "pentagon":
        return ring(5, (1.0,))
    if kind == "hexagon":
        return ring(6, (1.0,))
    if kind == "star":
        return ring(5, (1.0, 0.4))
    if kind == "cross":
        return ring(4, (1.0, 0.35, 0.35))
    # arrow: a fixed outline turned
    outline = [(-1, -0.3), (0.2, -0.3), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.3), (-1, 0.3)]
    cos, sin = np.cos(turn), np.sin(turn)
    return [(cx + r * (u * cos - v * sin), cy + r * (u * sin + v * cos)) for u, v in outline]


def _scenes(y: np.ndarray, rng: np.random.Generator, size: int, channels: int, num_classes: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    scale = 2  # drawn larger, then averaged down: smooth edges (4 costs 4x the drawing for no accuracy)
    big = size * scale
    x = np.empty((len(y), channels, size, size), dtype=np.float32)
    mode = "RGB" if channels == 3 else "L"
    for i, label in enumerate(y):
        top, bottom = rng.uniform(0, 1, (2, 3))
        sky = top[None, :] * (1 - np.linspace(0, 1, big)[:, None]) + bottom[None, :] * np.linspace(0, 1, big)[:, None]
        canvas = np.broadcast_to(sky[:, None, :], (big, big, 3))
        image = Image.fromarray((canvas * 255).astype(np.uint8)).convert(mode)
        draw = ImageDraw.Draw(image)

        def colour() -> tuple[int, ...] | int:
            rgb = tuple(int(v) for v in rng.integers(0, 256, 3))
            return rgb if channels == 3 else int(rng.integers(0, 256))

        for _ in range(int(rng.integers(2, 7))):  # clutter: small blobs and lines
            cx, cy = rng.uniform(0, big, 2)
            r = rng.uniform(0.03, 0.08) * big
            if rng.random() < 0.5:
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour())
            else:
                ex, ey = rng.uniform(0, big, 2)
                draw.line((cx, cy, ex, ey), fill=colour(), width=int(rng.integers(1, 2 * scale + 1)))
        kind = SCENE_OBJECTS[int(label)]
        cx, cy = rng.uniform(0.35, 0.65, 2) * big
        r = rng.uniform(0.22, 0.32) * big
        turn = rng.uniform(0, 2 * np.pi)
        # The object stands out from the sky behind it (a random colour was often the sky's own in one channel).
        behind = sky[int(cy) % big] if channels == 3 else sky[int(cy) % big].mean(keepdims=True)
        offset = rng.uniform(0.4, 0.8, len(behind))
        shade = np.where(behind < 0.5, np.minimum(behind + offset, 1), np.maximum(behind - offset, 0))
        fill = tuple(int(v * 255) for v in shade) if channels == 3 else int(shade[0] * 255)
        if kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif kind == "ellipse":
            draw.ellipse((cx - r, cy - r * 0.5, cx + r, cy + r * 0.5), fill=fill)
        elif kind == "crescent":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            shift = r * 0.5
            draw.ellipse(
                (cx - r + shift, cy - r - shift * 0.3, cx + r + shift, cy + r - shift * 0.3),
                fill=tuple(int(v * 255) for v in sky[int(cy) % big])
                if channels == 3
                else int(sky[int(cy) % big].mean() * 255),
            )
        else:
            draw.polygon(_polygon(kind, cx, cy, r, turn), fill=fill)
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = array.reshape(big, big, channels).transpose(2, 0, 1)
        x[i] = array.reshape(channels, size, scale, size, scale).mean(axis=(2, 4))
    return x + rng.normal(0, 0.03, x.shape).astype(np.float32)
