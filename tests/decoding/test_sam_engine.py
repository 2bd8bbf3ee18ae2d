"""One SAM engine per generation, shared by the grid proposer and the mask decoder (tiny random-weight models).

The references are the computations the proposers made before the engines existed: for SAM v1
``SamPredictor.set_image`` + ``predict_torch`` (segment-anything's own predictor) and the best multimask
output of each prompt; for SAM 2 the transformers model called as ``Sam2Proposer`` called it. The
proposer's masks at grid points, the decoder's masks for the same point prompts and the reference must be
bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from getok.decoding.sam_prompts import Prompt, to_sam_points  # noqa: E402
from getok.errors import ConfigError, DataError  # noqa: E402
from getok.ops.grid import grid_points  # noqa: E402

IMAGES = {
    "square-ish": np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8),
    "wide": np.random.default_rng(5).integers(0, 256, (37, 91, 3), dtype=np.uint8),
}


def _encoder_calls(module) -> list:
    calls: list = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


def _decoder_masks(dec, points_xy: np.ndarray) -> np.ndarray:
    """The decoder's mask for each point prompt ``points_xy`` in SAM's coordinates (one geometry point each:
    the decoder subtracts 0.5 from getok coordinates, so it is given ``point + 0.5``)."""
    out = []
    for q in points_xy:
        p = np.asarray(q, np.float64)[None] + 0.5
        # the point the model gets is the proposer's, to the float32 bit
        assert np.array_equal(to_sam_points(p).astype(np.float32), q[None].astype(np.float32))
        out.append(dec.decode_prompt(Prompt(points=p)))
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------- SAM v1
@pytest.fixture(scope="module")
def tiny_sam():
    pytest.importorskip("segment_anything")
    from getok.backends.sam import build_tiny_sam

    return build_tiny_sam()


def _sam_reference(model, image, points_xy, multimask=True, batch=7):
    """Pre-engine SamProposer: SamPredictor, ``batch`` prompts per call (the predicted IoUs differ in the last
    float32 bits between batch sizes), all outputs upsampled and thresholded, the best by predicted IoU."""
    from segment_anything import SamPredictor

    pr = SamPredictor(model)
    out_m, out_s = [], []
    with torch.no_grad():
        pr.set_image(image, image_format="RGB")
        pts = torch.as_tensor(np.asarray(points_xy, np.float32))[:, None, :]
        for i in range(0, len(pts), batch):
            coords = pr.transform.apply_coords_torch(pts[i : i + batch], pr.original_size)
            masks, iou, _ = pr.predict_torch(coords, torch.ones(coords.shape[:2], dtype=torch.int),
                                             multimask_output=multimask)
            best = iou.argmax(dim=1)
            rows = torch.arange(len(best))
            out_m.append(masks[rows, best].numpy())
            out_s.append(iou[rows, best].numpy())
    return np.concatenate(out_m), np.concatenate(out_s)


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("multimask", [True, False])
def test_sam_proposer_decoder_and_reference_agree_exactly(tiny_sam, name, multimask):
    from getok.backends.sam import SamEngine
    from getok.data_builders.proposers import SamProposer
    from getok.decoding.sam import SamDecoder

    image = IMAGES[name]
    pts = grid_points(5, image.shape[:2])
    ref_m, ref_s = _sam_reference(tiny_sam, image, pts, multimask)
    assert ref_m.any() and not ref_m.all()

    calls = _encoder_calls(tiny_sam.image_encoder)
    engine = SamEngine(tiny_sam)
    prop = SamProposer(engine=engine, points_per_batch=7, multimask=multimask)
    dec = SamDecoder(engine=engine, batch_size=3, multimask=multimask)
    st = prop.propose(image, 5)
    dec.set_image(image)
    assert len(calls) == 1 and engine.embedding_calls == 1  # embedded once, for both

    np.testing.assert_array_equal(st.point_masks(), ref_m)
    np.testing.assert_array_equal(st.scores, ref_s.astype(np.float64))
    masks, scores = prop.predict_points(pts)
    np.testing.assert_array_equal(masks, ref_m)
    np.testing.assert_array_equal(_decoder_masks(dec, pts), ref_m)
    # the engine's batched call, as either user makes it
    m, s = engine.predict(dec._state, pts[:, None, :], multimask=multimask, batch_size=4)
    np.testing.assert_array_equal(m, ref_m)
    assert m.dtype == bool and s.dtype == np.float32 and s.shape == (len(pts),)


def test_sam_engine_shared_by_model_argument_and_keys(tiny_sam):
    from getok.backends.sam import SamEngine
    from getok.data_builders.proposers import SamProposer
    from getok.decoding import get_decoder

    image = IMAGES["wide"]
    calls = _encoder_calls(tiny_sam.image_encoder)
    engine = SamEngine(tiny_sam, cache_size=2)
    prop = SamProposer(model=engine)  # an engine given as the model is used as is
    dec = get_decoder("sam", engine=engine)
    assert prop.engine is engine and dec.engine is engine and dec.model is tiny_sam
    prop.set_image(image, key="img-1")
    dec.set_image(image, key="img-1")
    assert len(calls) == 1 and dec.embeddings_computed == prop.embedding_calls == 1
    dec.set_image(image)  # without a key the pixels are hashed: another cache entry
    assert len(calls) == 2
    with pytest.raises(ConfigError, match="SamEngine"):
        get_decoder("sam", engine=object())


def test_sam_engine_disk_cache_is_shared_and_atomic(tiny_sam, tmp_path):
    from getok.backends.sam import SamEngine
    from getok.data_builders.proposers import SamProposer
    from getok.decoding.sam import SamDecoder

    image = IMAGES["square-ish"]
    a = SamProposer(model=tiny_sam, embedding_cache=tmp_path)
    st = a.propose(image, 4)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert a.embedding_calls == 1 and len(files) == 1 and files[0].endswith(".safetensors")  # no tmp left
    dec = SamDecoder(model=tiny_sam, embedding_cache=str(tmp_path))  # the decoder finds the proposer's file
    dec.set_image(image)
    assert dec.embeddings_computed == 0
    np.testing.assert_array_equal(_decoder_masks(dec, grid_points(4, image.shape[:2])), st.point_masks())
    fresh = SamEngine(tiny_sam)
    np.testing.assert_array_equal(fresh.embed(image).features, dec._state.features)
    with pytest.raises(ConfigError, match="engine's"):
        SamProposer(engine=fresh, embedding_cache=tmp_path)


def test_sam_engine_prompts_and_errors(tiny_sam):
    from getok.backends.sam import SamEngine

    engine = SamEngine(tiny_sam)
    image = IMAGES["wide"]
    emb = engine.embed(image)
    assert emb.original_size == image.shape[:2] and engine.embed(image) is emb
    m, s = engine.predict(emb, points=np.zeros((0, 1, 2)))
    assert m.shape == (0, *image.shape[:2]) and s.shape == (0,)
    boxes = np.array([[2.0, 3.0, 30.0, 20.0], [10.0, 5.0, 60.0, 30.0]])
    joint = np.array([[[8.0, 9.0]], [[20.0, 12.0]]])
    for kw in ({"boxes": boxes}, {"points": joint, "boxes": boxes}):
        m, s = engine.predict(emb, **kw)
        assert m.shape == (2, *image.shape[:2]) and s.shape == (2,)
        m1, _ = engine.predict(emb, **kw, batch_size=1)
        np.testing.assert_array_equal(m1, m)
    with pytest.raises(ConfigError, match="points or a box"):
        engine.predict(emb)
    with pytest.raises(ConfigError, match=r"\(B, P, 2\)"):
        engine.predict(emb, points=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="boxes"):
        engine.predict(emb, points=joint, boxes=boxes[:1])
    with pytest.raises(ConfigError, match="checkpoint"):
        SamEngine()
    with pytest.raises(ConfigError, match="not a segment-anything Sam"):
        SamEngine(torch.nn.Linear(2, 2))


def test_proposer_predict_points_needs_an_image(tiny_sam):
    from getok.data_builders.proposers import SamProposer

    with pytest.raises(DataError, match="set_image"):
        SamProposer(model=tiny_sam).predict_points([[1.0, 2.0]])


# ---------------------------------------------------------------------------------------------------- SAM 2
@pytest.fixture(scope="module")
def tiny_sam2():
    tf = pytest.importorskip("transformers")
    if not hasattr(tf, "Sam2Model"):
        pytest.skip(f"transformers {tf.__version__} has no Sam2Model")
    from getok.backends.sam2 import build_tiny_sam2

    return build_tiny_sam2()


def _sam2_reference(model, image, points_xy, multimask=True, batch=7):
    """Pre-engine Sam2Proposer: resize to S x S, ImageNet normalisation, points scaled in float32, ``batch``
    prompts per call, the best output's logits upsampled bilinearly and thresholded at 0."""
    import cv2
    import torch.nn.functional as F

    s = int(model.config.prompt_encoder_config.image_size)
    h, w = image.shape[:2]
    x = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    x = (x - np.array((0.485, 0.456, 0.406), np.float32)) / np.array((0.229, 0.224, 0.225), np.float32)
    out_m, out_s = [], []
    with torch.no_grad():
        emb = model.get_image_embeddings(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        pts = torch.as_tensor(np.asarray(points_xy, np.float32) * np.array([s / w, s / h], np.float32))
        for i in range(0, len(pts), batch):
            chunk = pts[i : i + batch]
            out = model(image_embeddings=emb, input_points=chunk[None, :, None, :],
                        input_labels=torch.ones((1, len(chunk), 1), dtype=torch.long), multimask_output=multimask)
            low, iou = out.pred_masks[0], out.iou_scores[0]
            best = iou.argmax(dim=1)
            rows = torch.arange(len(best))
            up = F.interpolate(low[rows, best][:, None].float(), size=(h, w), mode="bilinear", align_corners=False)
            out_m.append((up[:, 0] > 0).numpy())
            out_s.append(iou[rows, best].numpy())
    return np.concatenate(out_m), np.concatenate(out_s)


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("multimask", [True, False])
def test_sam2_proposer_decoder_and_reference_agree_exactly(tiny_sam2, name, multimask):
    from getok.backends.sam2 import Sam2Engine
    from getok.data_builders.proposers import Sam2Proposer
    from getok.decoding.sam2 import Sam2Decoder

    image = IMAGES[name]
    pts = grid_points(5, image.shape[:2])
    ref_m, ref_s = _sam2_reference(tiny_sam2, image, pts, multimask)
    assert ref_m.any() and not ref_m.all()

    engine = Sam2Engine(tiny_sam2)
    calls = []
    handle = tiny_sam2.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        prop = Sam2Proposer(engine=engine, points_per_batch=7, multimask=multimask)
        dec = Sam2Decoder(engine=engine, batch_size=3, multimask=multimask)
        st = prop.propose(image, 5)
        dec.set_image(image)
        assert len(calls) == 1 and engine.embedding_calls == 1
    finally:
        handle.remove()
    np.testing.assert_array_equal(st.point_masks(), ref_m)
    np.testing.assert_array_equal(st.scores, ref_s.astype(np.float64))
    np.testing.assert_array_equal(prop.predict_points(pts)[0], ref_m)
    np.testing.assert_array_equal(_decoder_masks(dec, pts), ref_m)


def test_sam2_engine_disk_cache_and_family_checks(tiny_sam2, tmp_path):
    from getok.backends.sam2 import Sam2Engine
    from getok.data_builders.proposers import Sam2Proposer
    from getok.decoding import get_decoder

    image = IMAGES["wide"]
    dec = get_decoder("sam2", model=tiny_sam2, embedding_cache=str(tmp_path))
    dec.set_image(image)
    assert dec.embeddings_computed == 1 and len(list(tmp_path.glob("*.safetensors"))) == 1
    prop = Sam2Proposer(model=tiny_sam2, embedding_cache=tmp_path)
    st = prop.propose(image, 4)
    assert prop.embedding_calls == 0  # loaded from the decoder's file
    for a, b in zip(prop._embedding.features, dec._state.features, strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(_decoder_masks(dec, grid_points(4, image.shape[:2])), st.point_masks())
    assert prop.fingerprint == dec.engine.fingerprint and len(prop.fingerprint) == 64
    with pytest.raises(ConfigError, match="Sam2Engine"):
        get_decoder("sam3", engine=Sam2Engine(tiny_sam2))
    with pytest.raises(ConfigError, match="not a transformers Sam2Model"):
        Sam2Engine(torch.nn.Linear(2, 2))


def _sam3_or_skip():
    tf = pytest.importorskip("transformers")
    if not hasattr(tf, "Sam3TrackerModel"):
        pytest.skip("transformers has no Sam3TrackerModel")
    from getok.backends.sam3 import build_tiny_sam3

    return build_tiny_sam3()


def test_sam3_engine_is_the_sam2_engine_with_sam3_preprocessing():
    from getok.backends.sam2 import Sam2Engine
    from getok.backends.sam3 import Sam3Engine
    from getok.decoding.sam3 import Sam3Decoder

    model = _sam3_or_skip()
    with pytest.raises(ConfigError, match="SAM 2 needs a transformers Sam2Model"):
        Sam2Engine(model)  # same API, other preprocessing: refused
    engine = Sam3Engine(model)
    assert isinstance(engine, Sam2Engine) and float(engine.pixel_mean[0]) == 0.5
    dec = Sam3Decoder(engine=engine)
    image = IMAGES["square-ish"]
    dec.set_image(image)
    pts = grid_points(3, image.shape[:2])
    m, _ = engine.predict(dec._state, pts[:, None, :], batch_size=2)
    np.testing.assert_array_equal(_decoder_masks(dec, pts), m)
