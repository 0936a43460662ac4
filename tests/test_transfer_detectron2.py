"""The detectron2 engine: its shipped configs, the checkpoint conversion it uses, and (with
detectron2 installed: ``make test`` builds it from ../shared/vendor/ when that source is there)
tiny runs of the real library, one test per defect those runs once had:

1. the built-in VOC / COCO names kept their ``MetadataCatalog`` entries (``dirname`` /
   ``json_file`` cannot change): every run stopped at registration;
2. ``MODEL.DEVICE`` stayed ``cuda`` on a CPU run;
3. a short ``--iters`` rounded ``SOLVER.STEPS`` up to ``MAX_ITER`` (detectron2's scheduler
   refuses);
4. PreciseBN ran its 200 batches after any ``--iters``;
5. ``NUM_CLASSES`` stayed COCO's 80 on a set with 3 categories;
6. an encoder detectron2's R50 cannot take trained from random init, the record silent;
7. evaluation ran twice; ``launch`` got a local function (no multi-GPU start);
   ``DATALOADER.NUM_WORKERS`` ignored ``workers=``.

The runs are tiny (64 px images, 4 per split, 2 iterations, few RoIs) and shared by the tests
that read them; a spy on ``DefaultTrainer.__init__`` records the config each run trains with.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hub.backbones import BackboneSpec, create_backbone
from hub.encoder import Encoder
from hub.export import D2_KEY, save_detectron2
from tests.trees import COCO_CATEGORIES, write_coco_tree, write_voc_tree
from transfer.detection.engine_detectron2 import CONFIGS, INSTALL
from transfer.tasks import RunContext

SKIP = (
    "detectron2 is not installed (python -m transfer.detection.install_detectron2; make test "
    "builds it when ../shared/vendor/ holds its source)"
)
# cheap settings of a real run: one 64 px short side, few proposals and RoIs (the res5 head
# runs once per RoI), one loader process
TINY = {
    "iters": 2,
    "batch_size": 2,
    "short_side": 64,
    "box_batch_size_per_image": 8,
    "roi_resolution": 7,
    "rpn_post_nms_top_n_train": 32,
    "rpn_post_nms_top_n_test": 8,
    "workers": 0,
}


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
    assert "pip install" in INSTALL and "install_detectron2" in INSTALL


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


# ---- with detectron2 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d2() -> Any:
    return pytest.importorskip("detectron2", reason=SKIP)


@pytest.mark.detectron2
def test_detectron2_loads_the_shipped_configs(d2) -> None:
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


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("d2trees")
    return {
        "voc": write_voc_tree(root / "voc"),
        "coco": write_coco_tree(root / "coco"),
        "voc_b": write_voc_tree(root / "voc_b", seed=3),
        "coco_b": write_coco_tree(root / "coco_b", seed=4),
    }


def _encoder_dir(root: Path, spec: BackboneSpec, ssl: dict) -> Path:
    torch.manual_seed(0)
    encoder = Encoder.from_spec(spec, ssl=ssl)
    encoder.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def r50(tmp_path_factory) -> Any:
    """A standard ResNet-50 encoder (ImageNet stem, width 64) at random init, loaded as
    ``transfer/run.py`` loads a folder."""
    from transfer.models import load_model

    ssl = {"method": "simsiam", "dataset": "imagenet", "epochs": 0, "batch_size": 256}
    folder = _encoder_dir(tmp_path_factory.mktemp("r50") / "r50", BackboneSpec("resnet50"), ssl)
    return load_model(str(folder))


class _Stop(Exception):
    """Raised by the spy once it has the config (no training wanted)."""


@dataclass
class Observed:
    """What a run did: the config it trained with and what the spies saw."""

    configs: list = field(default_factory=list)
    launched: list = field(default_factory=list)  # (qualname, picklable or the pickle error)
    precise_bn_iters: list = field(default_factory=list)
    evaluations: int = 0
    output: Any = None
    error: BaseException | None = None
    log: str = ""


def _clean_builtin_metadata() -> None:
    """Drop detectron2's built-in VOC / COCO metadata, so that on code where registration
    still failed on it (defect 1, tested by itself) a run meets the defects after it."""
    from detectron2.data import MetadataCatalog

    for name in ("voc_2007_trainval", "voc_2012_trainval", "voc_2007_test", "coco_2017_train",
                 "coco_2017_val"):  # fmt: skip
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)


def observe(
    kind: str, model: Any, data_root: Path, work: Path, stop: bool = False, **options: Any
) -> Observed:
    """Run ``voc_det`` / ``coco_det`` with ``--engine detectron2`` in this process, spied on.
    ``stop``: end the run once the trainer has its config."""
    import detectron2.engine as d2_engine
    import detectron2.engine.defaults as d2_defaults
    from detectron2.engine import DefaultTrainer, hooks

    from transfer import tasks

    seen = Observed()
    init, launch, infer = (
        DefaultTrainer.__init__,
        d2_engine.launch,
        d2_defaults.inference_on_dataset,
    )
    precise_init = hooks.PreciseBN.__init__

    def spy_init(self, cfg):
        seen.configs.append(cfg.clone())
        if stop:
            raise _Stop
        init(self, cfg)

    def spy_launch(main_func, *args, **kwargs):
        try:  # what torch.multiprocessing's spawn does with them
            again = pickle.loads(pickle.dumps((main_func, kwargs.get("args", ()))))
            seen.launched.append((main_func.__qualname__, again[0] is main_func))
        except Exception as e:  # noqa: BLE001 - what failed to pickle is the observation
            seen.launched.append((main_func.__qualname__, f"{type(e).__name__}: {e}"))
        return launch(main_func, *args, **kwargs)

    def spy_infer(*args, **kwargs):
        seen.evaluations += 1
        return infer(*args, **kwargs)

    def spy_precise(self, period, model, data_loader, num_iter):
        seen.precise_bn_iters.append(num_iter)
        precise_init(self, period, model, data_loader, num_iter)

    module = tasks.get(f"{kind}_det")
    overrides = ["engine=detectron2", f"data_root={data_root}"]
    overrides += [f"{k}={v}" for k, v in {**TINY, **options}.items()]
    opts = tasks.parse_options(module.Options, overrides)
    log = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(log):
        mp.setattr(DefaultTrainer, "__init__", spy_init)
        mp.setattr(d2_engine, "launch", spy_launch)
        mp.setattr(d2_defaults, "inference_on_dataset", spy_infer)
        mp.setattr(hooks.PreciseBN, "__init__", spy_precise)
        _clean_builtin_metadata()
        try:
            seen.output = module.run(
                model, opts, RunContext(device=torch.device("cpu"), work_dir=work)
            )
        except _Stop:
            pass
        except Exception as e:  # noqa: BLE001 - each test asserts on what it needs
            seen.error = e
    seen.log = log.getvalue()
    sys.stderr.write(seen.log[-2000:])
    return seen


@pytest.fixture(scope="module")
def voc_run(d2, r50, trees, tmp_path_factory) -> Observed:
    """One real tiny VOC run (R50-C4 Faster R-CNN, 2 iterations, evaluation on VOC07 test)."""
    return observe("voc", r50, trees["voc"], tmp_path_factory.mktemp("voc_work"))


def _completed(run: Observed) -> None:
    assert run.error is None, f"the run failed: {type(run.error).__name__}: {run.error}"


@pytest.mark.detectron2
def test_registering_again_replaces_the_builtin_and_earlier_metadata(d2, trees) -> None:
    """Defect 1: ``AssertionError: Attribute 'dirname' in the metadata of
    'voc_2007_trainval' cannot be set to a different value!`` (COCO alike)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from transfer.detection.engine_detectron2 import _register_datasets

    for first, second, kind in (("voc", "voc_b", "voc"), ("coco", "coco_b", "coco")):
        _register_datasets(kind, str(trees[first]))
        _register_datasets(kind, str(trees[second]))  # a second run, another tree
    voc = MetadataCatalog.get("voc_2007_trainval")
    assert voc.dirname == str(trees["voc_b"] / "VOCdevkit" / "VOC2007")
    assert len(DatasetCatalog.get("voc_2007_test")) == 4
    coco = MetadataCatalog.get("coco_2017_val")
    assert coco.json_file == str(trees["coco_b"] / "annotations" / "instances_val2017.json")
    assert {Path(d["file_name"]).parent for d in DatasetCatalog.get("coco_2017_val")} == {
        trees["coco_b"] / "val2017"
    }


@pytest.mark.detectron2
def test_model_device_is_the_runs_device(voc_run) -> None:
    """Defect 2: ``RuntimeError: Found no NVIDIA driver on your system`` on a CPU run."""
    assert [c.MODEL.DEVICE for c in voc_run.configs] == ["cpu"]
    _completed(voc_run)


@pytest.mark.detectron2
@pytest.mark.parametrize(("kind", "iters"), [("voc", 1), ("voc", 3), ("voc", 6), ("coco", 4)])
def test_short_iters_give_a_schedule_detectron2_accepts(d2, r50, trees, tmp_path, kind, iters):
    """Defect 3: ``--iters`` <= 6 (VOC) / <= 4 (COCO) rounded the rescaled steps up to
    MAX_ITER: ``Total num_updates must be greater than length of param schedule``."""
    from detectron2.solver import build_lr_scheduler

    run = observe(kind, r50, trees[kind], tmp_path, stop=True, iters=iters, batch_size=16)
    assert run.error is None, run.error
    (cfg,) = run.configs
    steps = list(cfg.SOLVER.STEPS)
    assert iters == cfg.SOLVER.MAX_ITER
    assert steps == sorted(set(steps)) and all(0 < s < iters for s in steps), steps
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.SOLVER.BASE_LR)
    scheduler = build_lr_scheduler(cfg, opt)  # what DefaultTrainer builds; raised before
    for _ in range(iters):
        opt.step()
        scheduler.step()


@pytest.mark.detectron2
def test_precise_bn_batches_follow_iters(voc_run) -> None:
    """Defect 4: PreciseBN ran its 200 batches after any ``--iters``; now the same fraction
    of them as of the schedule (at least one), recorded."""
    (cfg,) = voc_run.configs
    assert cfg.TEST.PRECISE_BN.ENABLED and cfg.TEST.PRECISE_BN.NUM_ITER == 1
    _completed(voc_run)
    assert voc_run.precise_bn_iters == [1]
    recorded = voc_run.output.protocol["precise_bn"]
    assert recorded == {"iters": 1, "full_schedule_iters": 200}


@pytest.mark.detectron2
def test_num_classes_come_from_the_dataset(d2, r50, trees, tmp_path) -> None:
    """Defect 5: ``A prediction has class=5, but the dataset only has 3 classes`` (COCO's 80
    hard-coded). The journey (tests/test_journey_detectron2.py) runs this set to the end."""
    run = observe("coco", r50, trees["coco"], tmp_path, stop=True)
    assert run.error is None, run.error
    assert [c.MODEL.ROI_HEADS.NUM_CLASSES for c in run.configs] == [len(COCO_CATEGORIES)]


@pytest.mark.detectron2
def test_an_encoder_that_does_not_fit_r50_is_refused_before_training(d2, trees, tmp_path):
    """Defect 6: the Fashion-MNIST ResNet-18 (width 16, 1-channel 3x3 stem) had every tensor
    skipped for its shape and trained from random init, the record silent."""
    from common.errors import UserError
    from transfer.models import load_model

    spec = BackboneSpec("resnet18", in_chans=1, width=16, stem="small")
    ssl = {"method": "simsiam", "dataset": "fashion_mnist", "epochs": 1, "batch_size": 256}
    model = load_model(str(_encoder_dir(tmp_path / "fmnist_r18", spec, ssl)))
    run = observe("voc", model, trees["voc"], tmp_path / "work")
    assert isinstance(run.error, UserError), run.error  # refused: `error:` + exit 2
    message = str(run.error)
    assert "\n" not in message  # one `error:` line through the CLI
    # a one-channel encoder gets a one-channel R50 (gray input); the 3x3 width-16 stem misfits
    assert "stem.conv1.weight is (16, 1, 3, 3) in the encoder, (64, 1, 7, 7) in detectron2" in (
        message
    )
    n = sum(not k.endswith("num_batches_tracked") for k in model.encoder.backbone.state_dict())
    assert f"0 of {n} encoder tensors would load" in message
    assert run.configs == [] and run.launched == []  # nothing trained


@pytest.mark.detectron2
def test_the_record_says_how_many_tensors_loaded(voc_run) -> None:
    _completed(voc_run)
    protocol = voc_run.output.protocol
    assert protocol["weights_loaded"] == "265/265 tensors"  # R50: 53 convs + 53 BNs x 4
    assert protocol["architecture"] == "Faster R-CNN, C4"


@pytest.mark.detectron2
def test_evaluation_runs_once(voc_run) -> None:
    """Defect 7a: DefaultTrainer's own evaluation after training, then ``Trainer.test``."""
    _completed(voc_run)
    assert voc_run.evaluations == 1
    assert {"bbox_AP", "bbox_AP50", "bbox_AP75"} == set(voc_run.output.metrics)


@pytest.mark.detectron2
def test_launch_gets_a_picklable_top_level_function(voc_run) -> None:
    """Defect 7b: ``Can't pickle local object 'outer.<locals>.main'``: a multi-GPU launch
    (spawned processes) could not start."""
    assert len(voc_run.launched) == 1
    qualname, picklable = voc_run.launched[0]
    assert picklable is True, picklable
    assert "<locals>" not in qualname


@pytest.mark.detectron2
def test_dataloader_workers_follow_the_workers_option(d2, r50, trees, tmp_path) -> None:
    """Defect 7c: ``DATALOADER.NUM_WORKERS`` stayed 4 whatever ``workers=``."""
    from common.workers import loader_workers

    for workers in (0, 1):
        run = observe("voc", r50, trees["voc"], tmp_path / str(workers), stop=True, workers=workers)
        assert run.error is None, run.error
        assert [c.DATALOADER.NUM_WORKERS for c in run.configs] == [loader_workers(workers)]


@pytest.mark.detectron2
def test_progress_in_a_log_file_is_a_few_lines_with_the_right_counter(voc_run) -> None:
    _completed(voc_run)
    lines = [ln for ln in voc_run.log.splitlines() if ln.startswith("detection (detectron2)")]
    assert 1 <= len(lines) <= 3, lines
    assert "2/2" in lines[-1]
