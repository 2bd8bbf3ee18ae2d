"""Builder edges from Python: a scenes directory is not a dataset, and non-positive counts are refused
instead of writing an empty dataset."""

from __future__ import annotations

import pytest

from getok.errors import ConfigError, DataError


def test_read_dataset_of_a_scenes_directory_says_what_to_build(tmp_path):
    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.scenes import write_scenes

    src = write_scenes(tmp_path / "scenes", 1)
    with pytest.raises(DataError, match=r"is an image source .* not a task dataset: build one first with 'getok build tasks --data"):
        read_dataset(src)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "manifest.json").write_text("3")
    with pytest.raises(DataError, match="expected a getok dataset manifest"):
        read_dataset(tmp_path / "odd")


def test_build_dataset_refuses_no_scenes(tmp_path):
    from getok.data_builders.dataset import build_dataset

    with pytest.raises(ConfigError, match="number of scenes must be >= 1, got -5"):
        build_dataset(tmp_path / "out", "grid:n=8", scenes=(-5, 0), progress=False)
    assert not list(tmp_path.iterdir())


def test_iter_images_and_offsets_refuse_non_positive_counts():
    from getok.data_builders.cli_builders import build_offsets, iter_images

    with pytest.raises(ConfigError, match="--scenes must be >= 1, got 0"):
        iter_images(scenes=0)
    with pytest.raises(ConfigError, match="--limit must be >= 1, got 0"):  # 0 used to mean "all"
        iter_images(scenes=3, limit=0)
    with pytest.raises(ConfigError, match="per_object must be >= 1, got 0"):
        build_offsets([], "grid_offset:n=8", None, per_object=0, progress=False)


@pytest.mark.parametrize("bw", [(float("nan"), 1, 1, 1), (float("inf"), 1, 1, 1)])
def test_offset_band_weights_must_be_finite(bw):
    from getok.data_builders.offsets import OffsetConfig

    with pytest.raises(ConfigError, match="offsets.band_weights"):
        OffsetConfig(band_weights=bw)


def test_polygon_min_area_and_scene_size():
    from getok.data_builders.polygons import PolygonTargetConfig
    from getok.data_builders.scenes import MAX_SCENE_SIDE, SceneConfig

    with pytest.raises(ConfigError, match="polygons.min_area must be a finite number >= 0, got nan"):
        PolygonTargetConfig(min_area=float("nan"))
    with pytest.raises(ConfigError, match=f"SceneConfig.size must be at most {MAX_SCENE_SIDE}"):
        SceneConfig(size=(100000, 100000))
    assert SceneConfig(size=(448, 448)).size == (448, 448)
