"""The detectron2 engine: the MoCo protocol's own configs (``configs/*.yaml``) run through
detectron2's training entry, with the encoder converted by ``hub/export.py``.

detectron2 is imported lazily: it is not on PyPI and is built from source by its users
(``python -m transfer.detection.install_detectron2``), so every other part of siamhub works
without it. ``--engine detectron2`` without it stops with the install instructions.

What a run does, in order:

1. export the encoder (``hub/export.py``) and register the data set's splits under
   detectron2's names, in ``DatasetCatalog`` and ``MetadataCatalog`` (the built-in
   registrations of those names point at ``datasets/`` and are replaced);
2. build the config: the shipped yaml, ``MODEL.DEVICE`` from the run's device,
   ``ROI_HEADS.NUM_CLASSES`` from the data set's categories, ``DATALOADER.NUM_WORKERS`` from
   ``workers=``, the schedule scaled as the torchvision engine's (``schedules.DetSchedule``:
   linear scaling by batch, ``--iters`` keeping the steps' fractions; a step at or past the
   last iteration never acts and is dropped), PreciseBN's 200 batches (detectron2's default
   ``TEST.PRECISE_BN.NUM_ITER``) scaled by the same fraction of the schedule;
3. refuse, before any training, an encoder whose tensors do not all load into detectron2's
   R50 (detectron2 itself would skip a mismatched tensor with a warning and train from random
   init): the error names the first mismatch; the record says how many tensors loaded;
4. train and evaluate once (detectron2's ``DefaultTrainer``, its evaluation hook off; the
   evaluation after training is ``DefaultTrainer.test``), in one process per GPU through
   detectron2's ``launch``, which is given a top-level function and a picklable job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.image_stats import IMAGENET_MEAN, IMAGENET_STD
from transfer.detection.predictions import COCO_FILE, VOC_FILE, detectron2_voc_rows
from transfer.detection.schedules import DetSchedule, steps_before_end
from transfer.detection.voc import VOC_CLASSES
from transfer.tasks import OptionError, RunContext, TaskOutput

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIGS = {
    "voc": CONFIG_DIR / "pascal_voc_R_50_C4_24k_moco.yaml",
    "coco": CONFIG_DIR / "coco_R_50_C4_1x_moco.yaml",
}
INSTALL = (
    "detectron2 is not installed (it is not on PyPI). Build and install it from source into "
    "this environment, after torch (a few CPU-minutes, once per machine; the wheel is cached):\n"
    "    python -m transfer.detection.install_detectron2\n"
    "(upstream's repository, github.com/facebookresearch/detectron2, at the tested commit; "
    "--source names another git URL, archive or folder). It runs pip install "
    "--no-build-isolation of the source, which needs a C++ "
    "compiler (and the CUDA toolkit matching torch for GPU ops; see "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html). Or use "
    "engine=torchvision, which needs nothing extra."
)
# detectron2's default TEST.PRECISE_BN.NUM_ITER: batches over which PreciseBN recomputes the
# BN statistics after the full schedule
PRECISE_BN_ITERS = 200
VOC_NAME = re.compile(r"^voc_(\d{4})_(\w+)$")  # detectron2's names: voc_2007_trainval


class Detectron2Missing(UserError, RuntimeError):
    """``--engine detectron2`` asked for, detectron2 not importable."""


class EncoderMismatch(UserError, ValueError):
    """An encoder whose tensors do not all fit detectron2's ResNet (it would train from a
    partly random init)."""


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


def dataset_names(kind: str, opts: Any) -> tuple[tuple[str, ...], str]:
    """detectron2's names of the task's train and test splits (``voc_2007_trainval``; COCO's
    ``train2017`` is ``coco_2017_train``, the shipped config's name)."""
    if kind == "voc":
        names = (*opts.train_sets, opts.test_set)
        bad = [n for n in names if not VOC_NAME.match(n)]
        if bad:
            raise OptionError(f"{bad[0]!r} is not a VOC split name (voc_<year>_<split>)")
        return tuple(opts.train_sets), opts.test_set
    return (coco_name(opts.train_split),), coco_name(opts.test_split)


def coco_name(split: str) -> str:
    m = re.fullmatch(r"([a-z]+)(\d{4})", split)
    return f"coco_{m[2]}_{m[1]}" if m else f"coco_{split}"


def _split_of(kind: str, name: str) -> tuple[str, str]:
    """(folder, split) of a detectron2 name: ``VOC2007``, ``trainval``; COCO: the split."""
    if kind == "voc":
        year, split = VOC_NAME.match(name).groups()
        return f"VOC{year}", split
    m = re.fullmatch(r"coco_(\d{4})_([a-z]+)", name)
    split = f"{m[2]}{m[1]}" if m else name.removeprefix("coco_")
    return split, split


def _register_datasets(
    kind: str,
    root: str,
    train: tuple[str, ...] | None = None,
    test: str | None = None,
) -> None:
    """Register the splits (default: the shipped config's) at ``root``, replacing any earlier
    registration of those names (detectron2's built-in ones, a previous run's) in both
    catalogs: ``MetadataCatalog`` refuses to change a set name's ``dirname`` / ``json_file``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances, register_pascal_voc

    if train is None or test is None:
        cfg = load_config(kind)
        train, test = tuple(cfg.DATASETS.TRAIN), cfg.DATASETS.TEST[0]
    for name in dict.fromkeys((*train, test)):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        folder, split = _split_of(kind, name)
        if kind == "voc":
            register_pascal_voc(
                name, str(Path(root) / "VOCdevkit" / folder), split, int(folder[3:])
            )
            MetadataCatalog.get(name).evaluator_type = "pascal_voc"  # as detectron2's built-ins
        else:
            register_coco_instances(
                name, {}, str(Path(root) / "annotations" / f"instances_{split}.json"),
                str(Path(root) / folder),
            )  # fmt: skip


@dataclass(frozen=True)
class DataFacts:
    """What the record and the config need from the data set, read from its files."""

    class_names: tuple[str, ...]
    train_images: int
    test_images: int


def data_facts(kind: str, root: str, train: tuple[str, ...], test: str) -> DataFacts:
    """Class names and image counts of the registered splits (VOC: the 20 classes detectron2's
    reader knows; COCO: the annotation files' categories, which train and test must share)."""
    if kind == "voc":
        counts = {}
        for name in (*train, test):
            folder, split = _split_of(kind, name)
            ids = Path(root) / "VOCdevkit" / folder / "ImageSets" / "Main" / f"{split}.txt"
            if not ids.is_file():
                raise OptionError(f"data_root={root}: {ids} is missing (VOC's official layout)")
            counts[name] = len(ids.read_text().split())
        return DataFacts(
            tuple(VOC_CLASSES), sum(counts[n] for n in train), counts[test]
        )  # fmt: skip
    docs = {}
    for name in (*train, test):
        path = Path(root) / "annotations" / f"instances_{_split_of(kind, name)[1]}.json"
        if not path.is_file():
            raise OptionError(f"data_root={root}: {path} is missing (COCO's official layout)")
        docs[name] = json.loads(path.read_text())
    categories = [sorted((c["id"], c["name"]) for c in d["categories"]) for d in docs.values()]
    if any(c != categories[0] for c in categories):
        raise OptionError(
            f"data_root={root}: the train and test annotations list different categories; "
            "detectron2 maps them to one set of class ids"
        )
    return DataFacts(
        tuple(name for _, name in categories[0]),
        sum(len(docs[n]["images"]) for n in train),
        len(docs[test]["images"]),
    )


def config_schedule(cfg: Any, name: str) -> DetSchedule:
    """The shipped config's schedule (batch 16) as a ``DetSchedule``, so that both engines
    scale a schedule the same way (``transfer/detection/schedules.py``)."""
    s, i = cfg.SOLVER, cfg.INPUT
    return DetSchedule(
        name, s.MAX_ITER, s.IMS_PER_BATCH, s.BASE_LR, tuple(s.STEPS), s.WARMUP_ITERS,
        tuple(i.MIN_SIZE_TRAIN), i.MIN_SIZE_TEST, i.MAX_SIZE_TRAIN, s.MOMENTUM, s.WEIGHT_DECAY,
        s.WARMUP_FACTOR, s.GAMMA, source=f"transfer/detection/configs/{name}.yaml",
    )  # fmt: skip


def build_config(
    kind: str,
    opts: Any,
    ctx: RunContext,
    weights: Path,
    work: Path,
    facts: DataFacts,
    preprocess: dict[str, Any],
) -> tuple[Any, DetSchedule, int]:
    """The run's CfgNode, its schedule and its PreciseBN batches (see the module docstring)."""
    from common.workers import loader_workers

    if opts.variant != "c4":
        raise OptionError(
            f"variant={opts.variant}: the detectron2 engine runs the MoCo protocol's R50-C4 "
            "configs only; variant=fpn needs engine=torchvision"
        )
    cfg = load_config(kind)
    sched = config_schedule(cfg, CONFIGS[kind].stem)
    if opts.batch_size:
        sched = sched.scaled(opts.batch_size)
    whole = sched.iters  # the whole schedule at this batch: what --iters is a fraction of
    if opts.iters:
        sched = sched.with_iters(opts.iters)
    if opts.short_side:
        sched = sched.with_short_side(opts.short_side)
    sched = steps_before_end(sched)
    precise_bn = max(1, min(PRECISE_BN_ITERS, round(PRECISE_BN_ITERS * sched.iters / whole)))
    train, test = dataset_names(kind, opts)
    # the encoder's input statistics, as the torchvision engine uses (detectron2 takes them
    # in 0-255); a one-channel encoder reads the images as gray ("L")
    mean = [255.0 * m for m in preprocess.get("mean", IMAGENET_MEAN)]
    std = [255.0 * s for s in preprocess.get("std", IMAGENET_STD)]
    cfg.merge_from_list([
        "MODEL.DEVICE", ctx.device.type,
        "MODEL.WEIGHTS", str(weights),
        "MODEL.PIXEL_MEAN", mean,
        "MODEL.PIXEL_STD", std,
        "INPUT.FORMAT", "L" if len(mean) == 1 else "RGB",
        "MODEL.ROI_HEADS.NUM_CLASSES", len(facts.class_names),
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", opts.box_batch_size_per_image,
        "MODEL.RPN.BATCH_SIZE_PER_IMAGE", opts.rpn_batch_size_per_image,
        "MODEL.RPN.PRE_NMS_TOPK_TRAIN", opts.rpn_pre_nms_top_n_train,
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", opts.rpn_post_nms_top_n_train,
        "MODEL.RPN.PRE_NMS_TOPK_TEST", opts.rpn_pre_nms_top_n_test,
        "MODEL.RPN.POST_NMS_TOPK_TEST", opts.rpn_post_nms_top_n_test,
        "MODEL.ANCHOR_GENERATOR.SIZES", [[int(a) for a in opts.anchor_sizes]],
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", opts.roi_resolution,
        "DATALOADER.NUM_WORKERS", loader_workers(opts.workers),
        "DATASETS.TRAIN", train,
        "DATASETS.TEST", (test,),
        "OUTPUT_DIR", str(work),
        "SEED", ctx.seed,
        "SOLVER.IMS_PER_BATCH", sched.batch_size,
        "SOLVER.BASE_LR", sched.base_lr,
        "SOLVER.MAX_ITER", sched.iters,
        "SOLVER.STEPS", tuple(sched.steps),
        "SOLVER.WARMUP_ITERS", sched.warmup_iters,
        "SOLVER.CHECKPOINT_PERIOD", sched.iters,  # the final model only
        "INPUT.MIN_SIZE_TRAIN", tuple(sched.train_sizes),
        "INPUT.MIN_SIZE_TEST", sched.test_size,
        "INPUT.MAX_SIZE_TRAIN", sched.max_size,
        "INPUT.MAX_SIZE_TEST", sched.max_size,
        "TEST.PRECISE_BN.NUM_ITER", precise_bn,
        "TEST.EVAL_PERIOD", 0,
    ])  # fmt: skip
    if kind == "coco":
        cfg.MODEL.MASK_ON = bool(opts.masks)  # Mask R-CNN (the protocol's) or Faster R-CNN
    return cfg, sched, precise_bn


def check_weights(cfg: Any, export: Any) -> str:
    """``"N/M tensors"`` of the exported encoder that load into detectron2's model, by
    detectron2's own matching (``align_and_update_state_dicts``, what its checkpointer does
    with a ``matching_heuristics`` pickle); raises ``EncoderMismatch`` naming the first
    mismatch unless every encoder tensor loads and every backbone tensor of the model gets one
    (the extra norm after res5 is new, MoCo §4.2)."""
    import torch
    from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
    from detectron2.modeling import build_model

    probe = cfg.clone()
    probe.defrost()
    probe.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(probe)  # shapes only, no memory, no init
    model_state = model.state_dict()
    encoder = {k: torch.from_numpy(v) for k, v in export.model.items()}
    aligned = align_and_update_state_dicts(model_state, dict(encoder), c2_conversion=False)
    loaded = {k for k, v in aligned.items() if k in model_state and model_state[k].shape == v.shape}
    expected = {
        k for k in model_state
        if k.startswith(("backbone.", "roi_heads.res5."))
        and not k.startswith("roi_heads.res5.norm.") and not k.endswith("num_batches_tracked")
    }  # fmt: skip
    used = len(loaded)
    if used == len(encoder) and expected <= loaded:
        return f"{used}/{len(encoder)} tensors"
    problems = []
    for key, value in encoder.items():
        targets = [m for m in model_state if m == key or m.endswith("." + key)]
        if not targets:
            problems.append(f"{key} has no place in it")
        elif all(model_state[t].shape != value.shape for t in targets):
            shape = tuple(model_state[targets[0]].shape)
            problems.append(f"{key} is {tuple(value.shape)} in the encoder, {shape} in detectron2")
    missing = sorted(expected - loaded)
    problems += [f"{k} gets no encoder tensor" for k in missing]
    depth = cfg.MODEL.RESNETS.DEPTH
    raise EncoderMismatch(
        f"the encoder does not fit detectron2's ResNet-{depth} (R{depth}-C4): {used} of "
        f"{len(encoder)} encoder tensors would load ({problems[0]}; "
        f"{len(problems) - len(missing)} encoder tensors misfit, {len(missing)} of detectron2's "
        f"get none); the detectron2 engine takes a standard ResNet-{depth} (7x7 stem, width "
        "64), engine=torchvision fine-tunes any ResNet encoder"
    )


def processes(device: Any) -> int:
    """detectron2 processes: one per GPU on CUDA, one on the CPU (detectron2's
    ``create_ddp_model`` passes a GPU index to DDP: it has no multi-process CPU training)."""
    import torch

    return max(1, torch.cuda.device_count()) if device.type == "cuda" else 1


@dataclass(frozen=True)
class Detectron2Job:
    """Everything a (spawned) detectron2 process needs; plain, picklable values."""

    kind: str
    data_root: str
    train: tuple[str, ...]
    test: str
    config_yaml: str
    work_dir: str


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


def trainer_class() -> type:
    """``DefaultTrainer`` with the project's evaluators, writers and progress line, and
    without its evaluation hook (the one evaluation is ``test`` after ``train``)."""
    from detectron2.engine import DefaultTrainer, HookBase, hooks
    from detectron2.evaluation import COCOEvaluator
    from detectron2.utils import comm
    from detectron2.utils.events import JSONWriter, get_event_storage

    from common.progress import progress

    class ProgressHook(HookBase):
        """One line every SIAMHUB_PROGRESS_SECONDS in a log file (common.progress)."""

        def before_train(self) -> None:
            self.bar = progress(
                total=self.trainer.max_iter, initial=self.trainer.start_iter,
                desc="detection (detectron2)", unit="it", disable=not comm.is_main_process(),
            )  # fmt: skip

        def after_step(self) -> None:
            history = get_event_storage().histories().get("total_loss")
            if history is not None:
                self.bar.set_postfix(loss=f"{history.latest():.3f}", refresh=False)
            self.bar.update(1)

        def after_train(self) -> None:
            self.bar.close()

    class Trainer(DefaultTrainer):
        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            from detectron2.data import MetadataCatalog

            eval_dir = Path(cfg.OUTPUT_DIR) / "eval"
            if MetadataCatalog.get(dataset_name).evaluator_type == "pascal_voc":
                return audited_voc_evaluator(dataset_name, eval_dir / VOC_FILE)
            return COCOEvaluator(dataset_name, output_dir=str(eval_dir))

        def build_hooks(self):
            kept = [h for h in super().build_hooks() if not isinstance(h, hooks.EvalHook)]
            return [*kept, ProgressHook()]

        def build_writers(self):
            return [JSONWriter(str(Path(self.cfg.OUTPUT_DIR) / "metrics.json"))]

    return Trainer


def train_and_evaluate(job: Detectron2Job) -> None:
    """One detectron2 process: train, evaluate once, and (rank 0) write ``results.json``.
    Top-level, so that ``launch`` can start it in spawned processes."""
    from detectron2.config import CfgNode, get_cfg
    from detectron2.utils import comm

    register_extra_norm_head()
    _register_datasets(job.kind, job.data_root, job.train, job.test)
    cfg = get_cfg()
    cfg.merge_from_other_cfg(CfgNode.load_cfg(job.config_yaml))
    cfg.freeze()
    trainer_cls = trainer_class()
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    results = trainer_cls.test(cfg, trainer.model)
    if comm.is_main_process():
        (Path(job.work_dir) / "results.json").write_text(json.dumps(results))


def saved_predictions(kind: str, eval_dir: Path) -> dict[str, Any]:
    """The artifacts of a detectron2 evaluation: COCOEvaluator's
    ``coco_instances_results.json`` (the list its COCOeval read) or the VOC per-class rows."""
    if kind == "voc":
        return {VOC_FILE: json.loads((eval_dir / VOC_FILE).read_text())}
    return {COCO_FILE: json.loads((eval_dir / "coco_instances_results.json").read_text())}


def protocol_config(cfg: Any) -> str:
    """The config as the protocol records it: the run's paths, seed, device and worker count
    blanked (they do not change what is measured; the record has the seed, ``extra`` the
    config as run)."""
    out = cfg.clone()
    out.defrost()
    out.OUTPUT_DIR, out.MODEL.WEIGHTS = "<work dir>", "<hub/export.py conversion of the encoder>"
    out.SEED, out.MODEL.DEVICE, out.DATALOADER.NUM_WORKERS = -1, "<device>", -1
    return out.dump()


def run(model: Any, opts: Any, ctx: RunContext, kind: str) -> TaskOutput:
    """Export the encoder, check it fits, fine-tune with detectron2's DefaultTrainer, evaluate."""
    require_detectron2()
    from detectron2.engine import launch

    from hub.export import save_detectron2

    work = Path(ctx.work_dir) / f"detectron2_{kind}_{model.model_id}_s{ctx.seed}"
    weights = work / "encoder.pkl"
    export = save_detectron2(model.encoder.backbone.state_dict(), weights)
    train, test = dataset_names(kind, opts)
    facts = data_facts(kind, opts.data_root, train, test)
    cfg, sched, precise_bn = build_config(kind, opts, ctx, weights, work, facts, model.preprocess)
    weights_loaded = check_weights(cfg, export)  # refuses before anything trains
    _register_datasets(kind, opts.data_root, train, test)
    eval_dir = work / "eval"
    for stale in (eval_dir / VOC_FILE, eval_dir / "coco_instances_results.json",
                  work / "results.json"):  # fmt: skip
        stale.unlink(missing_ok=True)  # a previous run's predictions are not this one's
    job = Detectron2Job(kind, str(opts.data_root), train, test, cfg.dump(), str(work))
    launch(train_and_evaluate, processes(ctx.device), dist_url="auto", args=(job,))
    results = json.loads((work / "results.json").read_text())
    metrics = {f"{task}_{k}": float(v) for task, vals in results.items() for k, v in vals.items()}
    masks = bool(cfg.MODEL.MASK_ON)
    protocol = {
        "engine": "detectron2",
        "architecture": ("Mask" if masks else "Faster") + " R-CNN, C4",
        "config": CONFIGS[kind].name,
        "config_dump": protocol_config(cfg),
        "schedule": sched.to_dict(),
        "precise_bn": {"iters": precise_bn, "full_schedule_iters": PRECISE_BN_ITERS},
        "weights": "hub/export.py conversion of the encoder",
        "weights_loaded": weights_loaded,
        "num_classes": len(facts.class_names),
        "train_images": facts.train_images,
        "test_images": facts.test_images,
        "evaluators": ["detectron2 COCOEvaluator (pycocotools)"] if kind == "coco"
        else ["detectron2 PascalVOCDetectionEvaluator (VOC07 11-point AP50, AP over .50:.95)"],
    }  # fmt: skip
    extra = {"config_as_run": cfg.dump(), "processes": processes(ctx.device)}
    return TaskOutput(protocol, metrics, extra, artifacts=saved_predictions(kind, eval_dir))
