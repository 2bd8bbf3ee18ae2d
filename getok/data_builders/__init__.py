"""Data builders: images with masks → training and evaluation data for every codec.

Sources (:mod:`~getok.data_builders.sources`, :mod:`~getok.data_builders.scenes`) give
:class:`~getok.records.AnnotatedImage` records; builders turn them into
:class:`~getok.samples.Sample` s — query tasks (:mod:`~getok.data_builders.tasks`), greedy
grid tokens from point masks, one mask per grid point (:mod:`~getok.data_builders.greedy`,
:mod:`~getok.data_builders.proposers`), offset / ``<DELETE>`` refinement pairs
(:mod:`~getok.data_builders.offsets`), polygon outlines (:mod:`~getok.data_builders.polygons`); dataset
directories (:mod:`~getok.data_builders.dataset`) and trainer exports (:mod:`~getok.data_builders.export`).
"""

from ..records import AnnotatedImage, AnnotatedObject, load_image_rgb
from ..samples import Sample, Turn
from .dataset import build_dataset, read_dataset, write_dataset
from .greedy import GreedyConfig, GreedyGeometryFn, greedy_cells, greedy_geometry
from .offsets import BandConfig, OffsetConfig, label_points, offset_sample
from .polygons import PolygonTargetConfig, polygon_sample
from .proposers import MaskProposer, PointMaskStack, get_proposer
from .scenes import SceneConfig, generate_scene, generate_scenes
from .sources import load_coco, load_manifest, load_reasonseg, load_refer
from .tasks import TaskConfig, build_tasks

__all__ = [
    "AnnotatedImage",
    "AnnotatedObject",
    "load_image_rgb",
    "Sample",
    "Turn",
    "SceneConfig",
    "generate_scene",
    "generate_scenes",
    "load_manifest",
    "load_coco",
    "load_refer",
    "load_reasonseg",
    "TaskConfig",
    "build_tasks",
    "MaskProposer",
    "PointMaskStack",
    "get_proposer",
    "GreedyConfig",
    "GreedyGeometryFn",
    "greedy_cells",
    "greedy_geometry",
    "BandConfig",
    "OffsetConfig",
    "label_points",
    "offset_sample",
    "PolygonTargetConfig",
    "polygon_sample",
    "build_dataset",
    "read_dataset",
    "write_dataset",
]
