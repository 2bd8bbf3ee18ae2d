"""Mask IoU agrees with pycocotools on the real-dev COCO masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from getok.ops.boxes import masks_to_boxes
from getok.ops.masks import mask_iou

mask_utils = pytest.importorskip("pycocotools.mask")


def _rle(seg, h, w):
    rles = mask_utils.frPyObjects(seg, h, w)
    return mask_utils.merge(rles) if isinstance(rles, list) else rles


@pytest.mark.shared
def test_mask_iou_matches_pycocotools_on_real_dev(real_dev_root):
    import cv2

    records = json.loads((real_dev_root / "manifest.json").read_text())
    n_pairs = 0
    for rec in records:
        h, w = rec["height"], rec["width"]
        objs = [o for o in rec["objects"] if o["segmentation"]]
        if not objs:
            continue
        rles = [_rle(o["segmentation"], h, w) for o in objs]
        masks = np.stack([mask_utils.decode(r).astype(bool) for r in rles])  # (K, H, W)
        # every object against every other (overlaps and disjoint pairs), and against a dilated copy
        k = len(objs)
        i, j = np.triu_indices(k, 1)
        ours = mask_iou(masks[i], masks[j]) if len(i) else np.zeros(0)
        coco = np.array([mask_utils.iou([rles[a]], [rles[b]], [0])[0, 0] for a, b in zip(i, j)])
        np.testing.assert_allclose(ours, coco, rtol=0, atol=1e-12)
        dil = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) for m in masks])
        dil_rles = [mask_utils.encode(np.asfortranarray(d.astype(np.uint8))) for d in dil]
        ours_d = mask_iou(masks, dil)
        coco_d = np.array([mask_utils.iou([r], [d], [0])[0, 0] for r, d in zip(rles, dil_rles)])
        np.testing.assert_allclose(ours_d, coco_d, rtol=0, atol=1e-12)
        assert (ours_d > 0).all() and (ours_d < 1).all()
        # boxes from masks by min / max agree with pycocotools' toBbox (XYWH)
        bb = masks_to_boxes(masks)
        coco_bb = mask_utils.toBbox(rles)
        np.testing.assert_allclose(bb[:, :2], coco_bb[:, :2])
        np.testing.assert_allclose(bb[:, 2:] - bb[:, :2], coco_bb[:, 2:])
        n_pairs += len(i) + k
    assert n_pairs > 300  # 313 objects in 40 images
