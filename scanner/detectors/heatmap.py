"""Heatmap PNGs for people: a 2-D map, upscaled without blurring, in a perceptual colour map, with a scale bar, the
caption (model, class, score), and optionally a sample input under it with the same cell marked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Anchors of matplotlib's "inferno" (black - purple - orange - pale yellow), interpolated linearly.
_INFERNO = np.asarray(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float64,
)


def colourise(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through the colour map."""
    position = np.clip(unit, 0.0, 1.0) * (len(_INFERNO) - 1)
    low = np.floor(position).astype(int).clip(0, len(_INFERNO) - 2)
    fraction = (position - low)[..., None]
    rgb = _INFERNO[low] * (1.0 - fraction) + _INFERNO[low + 1] * fraction
    colours: np.ndarray = rgb.round().astype(np.uint8)
    return colours


def file_stem(name: str, limit: int = 60) -> str:
    """`name` as a safe file-name part: letters, digits, '.', '_', '-' (runs of others become '_'), cut short."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:limit]
    return stem or "model"


def write_heatmap(
    values: np.ndarray,
    path: Path,
    *,
    caption: Sequence[str] = (),
    marker: tuple[int, int] | None = None,
    size: int = 320,
    sample: np.ndarray | None = None,
) -> Path:
    """Write `values` (rows, cols) as a PNG about `size` pixels wide, with a scale bar and caption lines below;
    `marker` (row, col) gets a cyan outline (the peak). `sample` (an image, (H, W) or (H, W, 3), values in [0, 1])
    is drawn under the caption at the map's size, with the marker's cell outlined too."""
    from PIL import Image, ImageDraw

    grid = np.asarray(values, dtype=np.float64)
    low, high = float(grid.min()), float(grid.max())
    unit = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
    rows, cols = grid.shape
    scale = max(1, size // max(rows, cols))
    picture = Image.fromarray(colourise(unit)).resize((cols * scale, rows * scale), Image.Resampling.NEAREST)
    under = None
    if sample is not None:
        pixels = (np.clip(np.asarray(sample, dtype=np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
        under = Image.fromarray(pixels).convert("RGB").resize(picture.size, Image.Resampling.NEAREST)

    bar_height, line_height, margin = 12, 14, 6
    width = max(picture.width, 240)
    height = picture.height + margin + bar_height + line_height + margin + line_height * len(caption) + margin
    sample_top = height
    if under is not None:
        height += line_height + under.height + margin
    canvas = Image.new("RGB", (width + 2 * margin, height + margin), "white")
    canvas.paste(picture, (margin, margin))
    bar_top = margin + picture.height + margin
    bar = colourise(np.tile(np.linspace(0.0, 1.0, width), (bar_height, 1)))
    canvas.paste(Image.fromarray(bar), (margin, bar_top))
    draw = ImageDraw.Draw(canvas)
    if marker is not None:
        top, left = margin + marker[0] * scale, margin + marker[1] * scale
        draw.rectangle((left, top, left + scale - 1, top + scale - 1), outline=(0, 255, 255), width=max(1, scale // 8))
    draw.text((margin, bar_top + bar_height + 1), f"{low:.3g}", fill="black")
    draw.text((margin + width - 7 * len(f"{high:.3g}"), bar_top + bar_height + 1), f"{high:.3g}", fill="black")
    for i, line in enumerate(caption):
        draw.text((margin, bar_top + bar_height + line_height + margin + i * line_height), line, fill="black")
    if under is not None:
        draw.text((margin, sample_top), "a sample input, same cell marked:", fill="black")
        canvas.paste(under, (margin, sample_top + line_height))
        if marker is not None:
            top, left = sample_top + line_height + marker[0] * scale, margin + marker[1] * scale
            draw.rectangle(
                (left, top, left + scale - 1, top + scale - 1), outline=(0, 255, 255), width=max(1, scale // 8)
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
