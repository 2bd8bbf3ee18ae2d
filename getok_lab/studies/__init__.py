"""Studies: one command per research question, on the embedded defaults (``docs/studies.md``).

* :mod:`getok_lab.studies.representations` — ``getok study representations``: text coordinates, bins, grid,
  grid + offset, text polygons and token polygons with the same tiny model, data and budget;
* :mod:`getok_lab.studies.resize_vocab` — ``getok study resize-vocab``: grid n → m with interpolated / mean /
  random rows, before and after a short fine-tune;
* :mod:`getok_lab.studies.self_correction` — ``getok study self-correction``: per-turn IoU over K turns and
  the oracle refinement bound;
* :mod:`getok_lab.studies.polygon_density` — ``getok study polygon-density``: tokens vs IoU over the polygon
  tolerance, oracle on real-dev and after training;
* :mod:`getok_lab.studies.common` (budget, scene series, statistics, provenance, outputs) and
  :mod:`getok_lab.studies.data` (the studies' sample builders); :mod:`getok_lab.studies.cli` (``register``).

Importing this package is light (numpy only); the studies import torch / transformers when they run.
"""
