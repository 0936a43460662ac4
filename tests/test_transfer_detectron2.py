"""The detectron2 engine's shipped configs and the checkpoint conversion it uses."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from hub.backbones import BackboneSpec, create_backbone
from hub.export import D2_KEY, save_detectron2
from transfer.detection.engine_detectron2 import CONFIGS, INSTALL


def test_shipped_configs_hold_the_moco_protocol() -> None:
    base = yaml.safe_load((CONFIGS["voc"].parent / "Base-RCNN-C4-BN.yaml").read_text())
    assert base["MODEL"]["BACKBONE"]["FREEZE_AT"] == 0
    assert base["MODEL"]["RESNETS"]["NORM"] == "naiveSyncBN"
    assert base["MODEL"]["RESNETS"]["STRIDE_IN_1X1"] is False
    assert base["MODEL"]["ROI_HEADS"]["NAME"] == "Res5ROIHeadsExtraNorm"
    assert base["INPUT"]["FORMAT"] == "RGB"
    assert base["SOLVER"] == {"IMS_PER_BATCH": 16, "BASE_LR": 0.02}
    voc = yaml.safe_load(CONFIGS["voc"].read_text())
    assert voc["SOLVER"]["MAX_ITER"] == 24000 and voc["SOLVER"]["STEPS"] == "(18000, 22000)"
    coco = yaml.safe_load(CONFIGS["coco"].read_text())
    assert coco["SOLVER"]["MAX_ITER"] == 90000 and coco["MODEL"]["MASK_ON"] is True
    assert "pip install" in INSTALL


@pytest.mark.detectron2
def test_detectron2_loads_the_shipped_configs() -> None:
    pytest.importorskip("detectron2")
    from transfer.detection.engine_detectron2 import load_config

    voc = load_config("voc")
    assert voc.SOLVER.MAX_ITER == 24000 and tuple(voc.SOLVER.STEPS) == (18000, 22000)
    assert voc.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm"
    assert voc.DATASETS.TEST == ("voc_2007_test",)
    coco = load_config("coco", ["SOLVER.IMS_PER_BATCH", "8"])
    assert coco.MODEL.MASK_ON and coco.SOLVER.IMS_PER_BATCH == 8
    from detectron2.modeling import build_model

    voc.MODEL.DEVICE = "cpu"
    voc.MODEL.RESNETS.NORM = "BN"  # SyncBN needs a process group; the head is what is checked
    model = build_model(voc)
    assert hasattr(model.roi_heads.res5, "norm")


def test_encoder_converts_for_the_detectron2_engine(tmp_path: Path) -> None:
    """Always runs: the conversion is plain torch (hub/export.py)."""
    backbone = create_backbone(BackboneSpec(name="resnet50", width=64))
    export = save_detectron2(backbone.state_dict(), tmp_path / "r50.pkl")
    with (tmp_path / "r50.pkl").open("rb") as f:
        obj = pickle.load(f)
    assert obj["matching_heuristics"] is True
    assert all(D2_KEY.match(k) for k in obj["model"])
    assert obj["model"]["res5.2.conv3.norm.running_var"].shape == (2048,)
    assert obj["model"]["stem.conv1.weight"].shape == (64, 3, 7, 7)
    kept = {k for k in backbone.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(export.renamed) == kept
