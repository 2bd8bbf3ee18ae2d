"""What a task build is asked for: the task names (:data:`TASKS`, ``"<query>><answer kind>"``) and
:class:`TaskConfig`, the settings of :func:`~getok.data_builders.tasks.build_tasks` (which tasks, seeds,
templates, caps, image checks), with their validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import ConfigError

__all__ = ["TASKS", "TaskConfig"]

#: Every task :func:`~getok.data_builders.tasks.build_tasks` builds.
TASKS: tuple[str, ...] = (
    "text>mask",
    "text>box",
    "text>point",
    "text>polyline",
    "point>mask",
    "box>mask",
    "multi>mask",
    "multi>box",
    "multi>point",
    "none>mask",
    "none>box",
    "none>point",
)


@dataclass(frozen=True)
class TaskConfig:
    """Which samples :func:`build_tasks` makes.

    Parameters
    ----------
    tasks : tuple of str
        Subset of :data:`TASKS`.
    seed : int
        Seed of every choice (templates, expressions, groups); choices depend on the sample, not on the
        order of images, so a parallel build equals a serial one.
    think : bool
        Wrap answers in ``<think>…</think><answer>…</answer>`` with a short templated thought.
    expressions_per_object : int
        Text samples per object and answer kind (each with a different expression when it has several).
    category_fallback : bool
        Refer to an object without expressions by ``"the <category>"`` when it is the only object of its
        category in the image.
    multi_from_categories : bool
        Also make "all the <categories>" queries for categories with two or more objects.
    max_multi_per_image, max_none_per_image : int
        Caps on multi-instance and no-target questions per image and answer kind.
    absent_categories : bool
        With no no-target expression in the image, ask for a category of the collection that the image
        lacks (only for exhaustively labelled sources such as COCO).
    none_hint : bool
        Append "Answer none if there is no such object." to text questions.
    polyline_eps : float
        Contour simplification of the polyline answer (fraction of the perimeter).
    min_area : int
        Objects with fewer visible pixels are skipped.
    verify_images : bool
        Decode every image once (catching corrupt files, over-size images and size mismatches) before using it.
    strict : bool
        An image that fails that check stops the build with its :class:`~getok.errors.DataError` (the CLI's
        ``--strict``); by default it is skipped and listed in the manifest's ``skipped``.
    point_candidates : int
        Interior pixels tried (deepest first) for a point whose codec rendering must land on the object.
    """

    tasks: tuple[str, ...] = (
        "text>mask",
        "text>box",
        "text>point",
        "point>mask",
        "box>mask",
        "multi>mask",
        "none>mask",
    )
    seed: int = 0
    think: bool = False
    expressions_per_object: int = 1
    category_fallback: bool = True
    multi_from_categories: bool = True
    max_multi_per_image: int = 2
    max_none_per_image: int = 1
    absent_categories: bool = False
    none_hint: bool = True
    polyline_eps: float = 0.01
    min_area: int = 1
    verify_images: bool = True
    strict: bool = False
    point_candidates: int = 64

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        bad = [t for t in tasks if t not in TASKS]
        if not tasks or bad:
            raise ConfigError(f"TaskConfig.tasks must be a non-empty subset of {TASKS}, got unknown {bad or tasks}")
        for name in ("expressions_per_object", "point_candidates", "min_area"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TaskConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_multi_per_image", "max_none_per_image"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TaskConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.polyline_eps < 1:
            raise ConfigError(f"TaskConfig.polyline_eps must be in [0, 1), got {self.polyline_eps}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d
