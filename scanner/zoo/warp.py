"""Bilinear resampling of image batches with numpy: augmentation (affine) and the WaNet-like warping trigger."""

from __future__ import annotations

import numpy as np


def sample_bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Read `images` (N, C, H, W) at fractional positions `rows`, `cols` (N or 1, H', W'); outside reads as 0."""
    n, _, height, width = images.shape
    out_shape = (n, *np.broadcast_shapes(rows.shape[1:], cols.shape[1:]))
    rows = np.broadcast_to(rows, out_shape)
    cols = np.broadcast_to(cols, out_shape)
    top = np.floor(rows).astype(np.int64)
    left = np.floor(cols).astype(np.int64)
    frac_r = (rows - top).astype(np.float32)[:, None]
    frac_c = (cols - left).astype(np.float32)[:, None]
    batch = np.arange(n)[:, None, None]

    def tap(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        values = images[batch, :, np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]  # (N, H, W, C)
        moved: np.ndarray = np.moveaxis(values, -1, 1) * inside[:, None].astype(np.float32)
        return moved

    out: np.ndarray = (
        tap(top, left) * (1 - frac_r) * (1 - frac_c)
        + tap(top, left + 1) * (1 - frac_r) * frac_c
        + tap(top + 1, left) * frac_r * (1 - frac_c)
        + tap(top + 1, left + 1) * frac_r * frac_c
    )
    return out.astype(np.float32)


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (N, C, h, w) to (N, C, height, width), aligning pixel centres."""
    _, _, h, w = images.shape
    rows = (np.arange(height, dtype=np.float32) + 0.5) * h / height - 0.5
    cols = (np.arange(width, dtype=np.float32) + 0.5) * w / width - 0.5
    padded = np.pad(images, ((0, 0), (0, 0), (0, 1), (0, 1)), mode="edge")
    grid_r = np.broadcast_to(np.clip(rows, 0, h - 1)[None, :, None], (1, height, width))
    grid_c = np.broadcast_to(np.clip(cols, 0, w - 1)[None, None, :], (1, height, width))
    return sample_bilinear(padded, grid_r, grid_c)


def random_affine(
    images: np.ndarray, rng: np.random.Generator, *, shift: float, degrees: float, scale: float
) -> np.ndarray:
    """Random rotation, scaling and shift of each image about its centre (zeros fill what comes in from outside)."""
    n, _, height, width = images.shape
    angle = np.deg2rad(rng.uniform(-degrees, degrees, n), dtype=np.float32)
    zoom = np.asarray(rng.uniform(1 - scale, 1 + scale, n), dtype=np.float32)
    dr, dc = np.asarray(rng.uniform(-shift, shift, (2, n)), dtype=np.float32)
    cr, cc = (height - 1) / 2, (width - 1) / 2
    r = np.arange(height, dtype=np.float32)[None, :, None] - cr
    c = np.arange(width, dtype=np.float32)[None, None, :] - cc
    cos, sin = (np.cos(angle) / zoom)[:, None, None], (np.sin(angle) / zoom)[:, None, None]
    rows = cos * r - sin * c + cr - dr[:, None, None]
    cols = sin * r + cos * c + cc - dc[:, None, None]
    return sample_bilinear(images, rows, cols)
