"""Procedural scenes decoded exactly: the ``proposals`` decoder with ``proposer=exact`` on scene datasets.

A dataset directory stores a scene's image, not its label map; the exact proposer needs the label map. A
procedural scene is deterministic in its id ``scene-<seed>-<index>`` and its scene settings (the dataset
manifest's ``scenes`` source), so :class:`SceneExactDecoder` regenerates it. ``get_decoder(
"proposals:proposer=exact", manifest=...)`` builds one (registered too as ``scene_exact``).
"""

from __future__ import annotations

import re

import numpy as np

from ..data_builders.proposers.exact import ExactProposer
from ..data_builders.scenes import SceneConfig, generate_scene, label_map_from_objects, scene_seed
from ..errors import ConfigError, DataError
from .base import register_decoder

__all__ = ["SceneExactDecoder"]

_SCENE_ID = re.compile(r"^scene-(\d+)-(\d+)$")


@register_decoder("scene_exact")
class SceneExactDecoder:
    """``proposals:proposer=exact`` for procedural scenes: each scene's exact proposer, rebuilt from its id.

    The exact proposer needs the scene's label map, which a dataset directory does not store; a scene is
    deterministic in its id ``scene-<seed>-<index>`` and its :class:`~getok.data_builders.scenes.SceneConfig`
    (from the manifest's ``scenes`` source, else the default), so the label map is regenerated and the
    regenerated pixels are checked against the image (:class:`DataError` when they differ). Then a
    :class:`~getok.decoding.proposals.ProposalDecoder` on that proposer decodes: greedy grid answers decode
    back to the builder's masks.

    Parameters
    ----------
    manifest : dict, optional
        The dataset manifest (its ``sources``).
    n, refined, background : ProposalDecoder / ExactProposer settings.
    cache_size : int
        Label maps kept.
    """

    name = "proposals"

    def __init__(self, manifest: dict | None = None, n: int = 32, refined: str = "auto", background: bool = True,
                 cache_size: int = 8) -> None:  # fmt: skip
        from ._common import LRUCache

        self.configs: dict[int, dict] = {}
        for src in (manifest or {}).get("sources") or []:
            if isinstance(src, dict) and src.get("loader") == "scenes":
                self.configs[int(src.get("seed", 0))] = dict(src.get("config") or {})
        self.n, self.refined, self.background = int(n), refined, bool(background)
        self._maps = LRUCache(cache_size)
        self._dec = None

    def settings(self) -> dict:
        return {"name": self.name, "proposer": "exact (scenes rebuilt from their ids)", "n": self.n, "refined": self.refined}

    def _label_map(self, key: str | None, image) -> np.ndarray:

        m = _SCENE_ID.match(str(key))
        if m is None:
            raise DataError(f"image {key!r} is not a procedural scene (scene-<seed>-<index>): the exact proposer has no label map")
        seed, index = int(m.group(1)), int(m.group(2))

        def build():
            cfg = SceneConfig(**self.configs[seed]) if seed in self.configs else SceneConfig()
            scene = generate_scene(scene_seed(seed, index), cfg, image_id=str(key))
            if image is not None and not np.array_equal(scene.get_image(), np.asarray(image)):
                raise DataError(f"image {key!r} differs from the regenerated scene (another SceneConfig?); no exact label map")
            return label_map_from_objects(scene)

        return self._maps.get_or_compute(str(key), build)

    def set_image(self, image, size=None, key=None) -> None:
        from .proposals import ProposalDecoder

        lm = self._label_map(key, image)
        self._dec = ProposalDecoder(ExactProposer(lm, background=self.background), n=self.n, refined=self.refined)
        self._dec.set_image(image, size=size, key=key)

    def decode(self, geometry):
        if self._dec is None:
            raise ConfigError("call set_image before decode")
        return self._dec.decode(geometry)
