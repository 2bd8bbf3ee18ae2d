"""The demo's one data set of its own: ``box>polygon`` questions (the object in a query box, answered as a
polygon in the grid + offset tokens)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from getok.provenance import fingerprint
from getok.train.sections import ScenesConfig

from .config import GRID_CODEC, POLYGON_ASK


# ---- data
def build_box_polygon_set(n_scenes: int, series: int, polygon_codec: str, out_dir: str | Path, *,
                          progress: bool = False) -> Path:  # fmt: skip
    """``box>polygon`` samples: each object of ``n_scenes`` procedural scenes, asked for by its box (written
    in ``grid_offset:n=8`` tokens), answered with its outline in ``polygon_codec`` — the same tokens.

    The box in the question gives the object's position, which the tiny model reads from tokens; the outline
    within it is what it must learn (it cannot yet localise objects from pixels, docs/training.md). Reused
    when ``out_dir`` exists with the same settings.

    Returns
    -------
    Path
        The dataset directory (``task="box>polygon"``, ``kind="mask"``; ``truth["query"]`` holds the box).
    """
    from getok.codecs.base import get_codec
    from getok.data_builders.dataset import reuse_built, write_dataset
    from getok.data_builders.polygons import polygon_sample
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import SampleList, image_ref
    from getok.errors import GetokError
    from getok.geometry import Geometry
    from getok.ops.boxes import mask_to_box

    out = Path(out_dir)
    scfg = ScenesConfig().scene_config()  # the training scenes' drawing settings
    spec = {"n": int(n_scenes), "series": int(series), "codec": polygon_codec, "query_codec": GRID_CODEC,
            "ask": POLYGON_ASK, "scenes": scfg.to_dict()}  # fmt: skip
    fp = fingerprint(spec)
    if reuse_built(out, fp, "a polygon set", "remove it or use another --out"):
        return out
    qc = get_codec(GRID_CODEC)
    samples = SampleList(settings={"codec": polygon_codec, "type": "box>polygon"})
    scenes = generate_scenes(int(n_scenes), int(series), scfg)
    it = scenes
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(scenes, desc=f"polygons (series {series})", unit="scene")
    for im in it:
        ref, needs_write = image_ref(im)
        n0 = len(samples)
        for obj in im.objects:
            sid = f"{im.image_id}-box2polygon-o{obj.id}"
            try:
                mask = obj.get_mask()
                box = [float(v) for v in mask_to_box(mask)]
                btext = qc.encode([Geometry(size=im.size, box=box)], "box")
                s = polygon_sample(mask, polygon_codec, sample_id=sid, image_id=im.image_id, image=ref, query=btext,
                                   ask=POLYGON_ASK, meta={"source": "scenes", "category": obj.category})  # fmt: skip
            except GetokError as exc:
                samples.skip(f"{im.image_id} object {obj.id} box>polygon", str(exc))
                continue
            truth = {**s.truth, "query": {"type": "box", "box": box, "text": btext}}
            samples.append(dataclasses.replace(s, task="box>polygon", truth=truth))
        if needs_write and len(samples) > n0:
            samples.images[im.image_id] = im
    man = {"builder": {"fingerprint": fp, **spec},
           "sources": [{"loader": "scenes", "n": int(n_scenes), "seed": int(series), "config": scfg.to_dict()}]}  # fmt: skip
    return write_dataset(samples, out, man)


