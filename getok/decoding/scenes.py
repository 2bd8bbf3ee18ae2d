"""Procedural scenes decoded exactly (the decoder lives in :mod:`getok.decoding.point_masks`, beside the decoder it wraps): the ``point_masks`` decoder with ``proposer=exact`` on scene datasets.

A dataset directory stores a scene's image, not its label map; the exact proposer needs the label map. A
procedural scene is deterministic in its id ``scene-<seed>-<index>`` and its scene settings (the dataset
manifest's ``scenes`` source), so :class:`SceneExactDecoder` regenerates it. ``get_decoder(
"point_masks:proposer=exact", manifest=...)`` builds one (registered too as ``scene_exact``).
"""

from __future__ import annotations

from .point_masks import SceneExactDecoder

__all__ = ["SceneExactDecoder"]
