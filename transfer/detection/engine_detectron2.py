"""The detectron2 engine: the MoCo protocol's own configs (``configs/*.yaml``) run through
detectron2's training entry, with the encoder converted by ``hub/export.py``.

detectron2 is imported lazily: it is not on PyPI and is built from source by its users, so
every other part of siamhub works without it. ``--engine detectron2`` without it stops with
the install instructions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import UserError
from transfer.detection.predictions import COCO_FILE, VOC_FILE, detectron2_voc_rows
from transfer.tasks import RunContext, TaskOutput

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIGS = {
    "voc": CONFIG_DIR / "pascal_voc_R_50_C4_24k_moco.yaml",
    "coco": CONFIG_DIR / "coco_R_50_C4_1x_moco.yaml",
}
INSTALL = (
    "detectron2 is not installed (it is not on PyPI). Install it from source into this "
    "environment, after torch:\n"
    "    python -m pip install --no-build-isolation "
    "'git+https://github.com/facebookresearch/detectron2.git'\n"
    "(needs a C++ compiler, and the CUDA toolkit matching torch for GPU ops; see "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html), or use "
    "engine=torchvision, which needs nothing extra."
)


class Detectron2Missing(UserError, RuntimeError):
    """``--engine detectron2`` asked for, detectron2 not importable."""


def require_detectron2() -> Any:
    try:
        import detectron2  # noqa: F401
    except ImportError as e:
        raise Detectron2Missing(INSTALL) from e
    return detectron2


def register_extra_norm_head() -> None:
    """Register ``Res5ROIHeadsExtraNorm``: Res5ROIHeads with a norm after res5 (MoCo §4.2)."""
    from detectron2.layers import get_norm
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

    if "Res5ROIHeadsExtraNorm" in ROI_HEADS_REGISTRY:
        return

    @ROI_HEADS_REGISTRY.register()
    class Res5ROIHeadsExtraNorm(Res5ROIHeads):
        @classmethod
        def _build_res5_block(cls, cfg):
            seq, out_channels = super()._build_res5_block(cfg)
            norm = get_norm(cfg.MODEL.RESNETS.NORM, out_channels)
            seq.add_module("norm", norm)
            return seq, out_channels


def load_config(kind: str, overrides: list[str] | None = None):
    """detectron2's CfgNode of a shipped config (``kind``: voc or coco)."""
    require_detectron2()
    from detectron2.config import get_cfg

    register_extra_norm_head()
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS[kind]))
    if overrides:
        cfg.merge_from_list(overrides)
    return cfg


def _register_datasets(kind: str, root: str) -> None:
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances, register_pascal_voc

    if kind == "voc":
        for name, (year, split) in {
            "voc_2007_trainval": ("VOC2007", "trainval"),
            "voc_2012_trainval": ("VOC2012", "trainval"),
            "voc_2007_test": ("VOC2007", "test"),
        }.items():
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
            register_pascal_voc(name, str(Path(root) / "VOCdevkit" / year), split, int(year[3:]))
    else:
        for name, split in {"coco_2017_train": "train2017", "coco_2017_val": "val2017"}.items():
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
            register_coco_instances(
                name, {}, str(Path(root) / "annotations" / f"instances_{split}.json"),
                str(Path(root) / split),
            )  # fmt: skip


def audited_voc_evaluator(dataset_name: str, out: Path) -> Any:
    """detectron2's PascalVOCDetectionEvaluator that also writes the per-class detections
    its VOC07 AP reads (``voc_detections.json``, ``transfer/detection/predictions.py``)."""
    from detectron2.evaluation import PascalVOCDetectionEvaluator
    from detectron2.utils import comm

    class AuditedVOCEvaluator(PascalVOCDetectionEvaluator):
        def evaluate(self):
            per_rank = comm.gather(self._predictions, dst=0)  # every rank calls, as super's
            if comm.is_main_process():
                rows = detectron2_voc_rows(per_rank, self._class_names)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rows, separators=(",", ":")))
            return super().evaluate()

    return AuditedVOCEvaluator(dataset_name)


def saved_predictions(kind: str, eval_dir: Path) -> dict[str, Any]:
    """The artifacts of a detectron2 evaluation: COCOEvaluator's
    ``coco_instances_results.json`` (the list its COCOeval read) or the VOC per-class rows."""
    if kind == "voc":
        return {VOC_FILE: json.loads((eval_dir / VOC_FILE).read_text())}
    return {COCO_FILE: json.loads((eval_dir / "coco_instances_results.json").read_text())}


def run(model: Any, opts: Any, ctx: RunContext, kind: str) -> TaskOutput:
    """Export the encoder, fine-tune with detectron2's DefaultTrainer, evaluate."""
    require_detectron2()
    import torch
    from detectron2.engine import DefaultTrainer, launch
    from detectron2.evaluation import COCOEvaluator

    from hub.export import save_detectron2

    work = Path(ctx.work_dir) / f"detectron2_{kind}_{model.model_id}_s{ctx.seed}"
    weights = work / "encoder.pkl"
    save_detectron2(model.encoder.backbone.state_dict(), weights)
    _register_datasets(kind, opts.data_root)
    batch = opts.batch_size or 16
    overrides = [
        "MODEL.WEIGHTS", str(weights), "OUTPUT_DIR", str(work), "SEED", str(ctx.seed),
        "SOLVER.IMS_PER_BATCH", str(batch),
        "SOLVER.BASE_LR", str(0.02 * batch / 16),
    ]  # fmt: skip
    cfg = load_config(kind, overrides)
    scale = 16 / batch  # linear scaling rule, as the torchvision engine's schedules
    scaled_iters = round(cfg.SOLVER.MAX_ITER * scale)
    final_iters = opts.iters or scaled_iters
    cfg.SOLVER.STEPS = tuple(
        round(s * scale * final_iters / scaled_iters) for s in cfg.SOLVER.STEPS
    )
    cfg.SOLVER.MAX_ITER = final_iters
    cfg.SOLVER.WARMUP_ITERS = min(cfg.SOLVER.WARMUP_ITERS, max(1, final_iters // 10))
    if opts.short_side:
        cfg.INPUT.MIN_SIZE_TRAIN = (opts.short_side,)
        cfg.INPUT.MIN_SIZE_TEST = opts.short_side

    eval_dir = work / "eval"
    for stale in (eval_dir / VOC_FILE, eval_dir / "coco_instances_results.json"):
        stale.unlink(missing_ok=True)  # a previous run's predictions are not this one's

    class Trainer(DefaultTrainer):
        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            if kind == "voc":
                return audited_voc_evaluator(dataset_name, eval_dir / VOC_FILE)
            return COCOEvaluator(dataset_name, output_dir=str(eval_dir))

    def main() -> None:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        (work / "results.json").write_text(json.dumps(Trainer.test(cfg, trainer.model)))

    launch(main, max(1, torch.cuda.device_count()), dist_url="auto")
    results = json.loads((work / "results.json").read_text())
    metrics = {f"{task}_{k}": float(v) for task, vals in results.items() for k, v in vals.items()}
    protocol = {
        "engine": "detectron2",
        "config": CONFIGS[kind].name,
        "config_dump": cfg.dump(),
        "weights": "hub/export.py conversion of the encoder",
    }
    return TaskOutput(protocol, metrics, artifacts=saved_predictions(kind, eval_dir))
