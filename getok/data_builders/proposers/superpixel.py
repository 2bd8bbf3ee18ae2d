"""``SuperpixelProposer``: weight-free point masks from a scikit-image over-segmentation.

The image is over-segmented once (SLIC or Felzenszwalb–Huttenlocher); the point mask of a grid point is
the segment that contains it. It stands in for SAM where no weights are available: segments follow
colour edges, so an object is covered by a few segments and the greedy builder unions them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...errors import ConfigError, GeometryError
from ...provenance import image_hash
from .base import PointMaskStack, point_pixels
from .registry import register_proposer

__all__ = ["SuperpixelConfig", "SuperpixelProposer", "segment"]

METHODS = ("felzenszwalb", "slic")


@dataclass(frozen=True)
class SuperpixelConfig:
    """Over-segmentation settings (every field changes the output, so all of them key the cache).

    Attributes
    ----------
    method : {"felzenszwalb", "slic"}
    scale, sigma, min_size : felzenszwalb's parameters (larger ``scale`` → larger segments; ``min_size``
        in pixels); ``sigma`` is the Gaussian pre-smoothing of both methods.
    n_segments, compactness : SLIC's parameters (approximate segment count; colour vs space weight).
    """

    method: str = "felzenszwalb"
    scale: float = 100.0
    sigma: float = 0.8
    min_size: int = 50
    n_segments: int = 300
    compactness: float = 10.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"superpixel.method must be one of {METHODS}, got {self.method!r}")
        if not self.scale > 0:
            raise ConfigError(f"superpixel.scale must be > 0, got {self.scale}")
        if self.sigma < 0:
            raise ConfigError(f"superpixel.sigma must be >= 0, got {self.sigma}")
        if self.min_size < 1:
            raise ConfigError(f"superpixel.min_size must be >= 1, got {self.min_size}")
        if self.n_segments < 1:
            raise ConfigError(f"superpixel.n_segments must be >= 1, got {self.n_segments}")
        if not self.compactness > 0:
            raise ConfigError(f"superpixel.compactness must be > 0, got {self.compactness}")


def segment(image: np.ndarray, cfg: SuperpixelConfig) -> np.ndarray:
    """Over-segment ``image`` ``(H, W, 3)`` uint8 RGB into a label map ``(H, W)`` int64."""
    from skimage.segmentation import felzenszwalb, slic

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise GeometryError(f"image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
    if cfg.method == "slic":
        lab = slic(img, n_segments=cfg.n_segments, compactness=cfg.compactness, sigma=cfg.sigma, start_label=0)
    else:
        lab = felzenszwalb(img, scale=cfg.scale, sigma=cfg.sigma, min_size=cfg.min_size)
    return np.asarray(lab, dtype=np.int64)


@register_proposer("superpixel")
class SuperpixelProposer:
    """Grid point → the superpixel that contains it.

    Parameters
    ----------
    config : SuperpixelConfig, optional
    **settings
        Fields of :class:`SuperpixelConfig` (``method="slic", n_segments=400``, ...), instead of ``config``.

    Examples
    --------
    >>> img = np.zeros((32, 32, 3), np.uint8); img[:, 16:] = 255
    >>> st = SuperpixelProposer(method="felzenszwalb", min_size=10).propose(img, 2)
    >>> st.point_to_mask.tolist()
    [0, 1, 0, 1]
    """

    name = "superpixel"

    def __init__(self, config: SuperpixelConfig | None = None, **settings) -> None:
        if config is not None and settings:
            raise ConfigError("pass either a SuperpixelConfig or keyword settings, not both")
        try:
            self.config = config or SuperpixelConfig(**settings)
        except TypeError as exc:
            raise ConfigError(f"superpixel: unknown setting in {sorted(settings)}") from exc
        self._last: tuple[str, np.ndarray] | None = None  # (image hash, label map) of the last image

    def settings(self) -> dict:
        import skimage

        return {**asdict(self.config), "skimage": skimage.__version__}

    def labels(self, image: np.ndarray) -> np.ndarray:
        """The over-segmentation ``(H, W)`` int64 of ``image`` (the last one is kept)."""

        h = image_hash(np.asarray(image))
        if self._last is None or self._last[0] != h:
            self._last = (h, segment(image, self.config))
        return self._last[1]

    def propose(self, image: np.ndarray, n: int) -> PointMaskStack:
        """One segment per grid point of an ``n x n`` grid over ``image`` (``(H, W, 3)`` uint8 RGB)."""
        return PointMaskStack.from_label_map(self.labels(image), n)

    def propose_at(self, image: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
        """The segment under arbitrary points ``(K, 2)`` XY pixels: masks ``(K, H, W)`` bool."""
        lab = self.labels(image)
        rows, cols = point_pixels(points_xy, lab.shape)
        return lab[None] == lab[rows, cols][:, None, None]
