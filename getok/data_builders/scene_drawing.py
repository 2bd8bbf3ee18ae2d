"""Drawing the procedural scenes: the mask of one shape (circle, square, triangle, ring, cross, L-shape, star,
ellipse, bar) at a given centre, half-extent and angle, and the background canvases (:data:`BACKGROUNDS`).
Pixels only; :mod:`getok.data_builders.scenes` decides what goes where (placement, occlusion, colours)
and describes it."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

__all__ = ["BACKGROUNDS", "unit_polygon", "shape_mask", "background_canvas"]

#: Background kinds: plain, noisy or textured (stripes / checker) greys, never a palette colour.
BACKGROUNDS: tuple[str, ...] = ("plain", "noise", "texture")


def _rot(u: np.ndarray, v: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return c * u + s * v, -s * u + c * v


def unit_polygon(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices ``(V, 2)`` of a polygonal shape in units of its half-extent, centred at the origin."""
    if shape == "square":
        a = 0.72
        return np.array([[-a, -a], [a, -a], [a, a], [-a, a]])
    if shape == "triangle":
        t = np.deg2rad([-90, 30, 150])
        return np.stack([np.cos(t), np.sin(t) * 0.95 + 0.15], axis=1)
    if shape == "star":
        t = np.deg2rad(-90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "cross":
        a, b = 1.0, 0.24  # arm length, arm half-width: thin parts
        return np.array(
            [[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]]
        )
    if shape == "L-shape":
        a, t = 0.85, 0.42
        return np.array([[-a, -a], [-a + t, -a], [-a + t, a - t], [a, a - t], [a, a], [-a, a]])
    if shape == "bar":
        a, b = 1.0, float(rng.uniform(0.16, 0.24))
        return np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
    raise ConfigError(f"unknown polygonal shape {shape!r}")  # pragma: no cover - guarded by SHAPES


def shape_mask(
    shape: str, cx: float, cy: float, r: float, angle: float, size: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Full (unoccluded) mask of one shape, ``(H, W)`` bool; pixel centres at ``(j + 0.5, i + 0.5)``."""
    import cv2

    h, w = size
    if shape in ("circle", "ring", "ellipse"):
        x0, x1 = max(0, int(cx - r - 1)), min(w, int(cx + r + 2))
        y0, y1 = max(0, int(cy - r - 1)), min(h, int(cy + r + 2))
        ys, xs = np.mgrid[y0:y1, x0:x1]
        u = (xs + 0.5 - cx) / r
        v = (ys + 0.5 - cy) / r
        if shape == "ellipse":
            u, v = _rot(u, v, angle)
            inside = u * u + (v / 0.55) ** 2 <= 1.0
        else:
            rho2 = u * u + v * v
            inside = rho2 <= 1.0
            if shape == "ring":
                inside &= rho2 >= 0.56**2
        m = np.zeros(size, dtype=bool)
        m[y0:y1, x0:x1] = inside
        return m
    poly = unit_polygon(shape, rng)
    c, s = math.cos(angle), math.sin(angle)
    px = cx + r * (c * poly[:, 0] - s * poly[:, 1])
    py = cy + r * (s * poly[:, 0] + c * poly[:, 1])
    pts = np.rint((np.stack([px, py], axis=1) - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)
    out = np.zeros(size, dtype=np.uint8)
    cv2.fillPoly(out, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def background_canvas(kind: str, size: tuple[int, int], noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """A float32 ``(H, W, 3)`` canvas of background ``kind``: a tinted grey, with stripes or a checker for
    ``"texture"``. Per-pixel noise (``noise_std``) is added by the caller once the objects are painted."""
    h, w = size
    grey = rng.uniform(95, 175)
    tint = rng.uniform(-6, 6, size=3)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = grey + tint
    if kind == "texture":
        period = rng.uniform(6, 16)
        theta = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xs * math.cos(theta) + ys * math.sin(theta)) * (2 * np.pi / period)
        if rng.random() < 0.5:
            pattern = np.sign(np.sin(phase)) * rng.uniform(6, 14)  # stripes
        else:
            pattern = np.sin(phase) * np.sin((xs * -math.sin(theta) + ys * math.cos(theta)) * (2 * np.pi / period))
            pattern = np.sign(pattern) * rng.uniform(6, 14)  # checker
        img += pattern[..., None]
    return img
