"""Which split a transfer record was evaluated on, read from what its protocol states.

Every transfer task states its evaluation split in its protocol, each in its own words:

- ``knn``: ``queries`` (``"fashion_mnist test (10000 images) from <root>"``), the bank
  ``bank``;
- ``linear``, ``lowshot``: ``test_split`` (same form), the training split ``train_split``
  (low-shot: subsets of the training split);
- detection on the torchvision engine: ``dataset.test`` (``"val2017"``, ``"voc_2007_test"``,
  ``"val (Fashion-MNIST test items)"``), ``dataset.train`` (a name or a list) and
  ``test_images``;
- detection on the detectron2 engine: the ``DATASETS.TEST`` / ``DATASETS.TRAIN`` of
  ``config_dump`` (the config it ran), unless a ``dataset`` block says it.

:func:`evaluated_on` reads them into one :class:`EvalSplit`; the boards and the row detail
pages show it. A split is marked as a training split when it is one the run trained on, or
its name says so (``train2017``, ``voc_2007_trainval``, ``coco_2017_train``, Fashion-MNIST's
``train``): numbers measured there are not held-out numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DESCRIBED = re.compile(r"^(?P<dataset>\S+) (?P<split>\S+) \((?P<images>\d+) images\)")
_TRAINING_NAME = re.compile(r"(^|[_\W])train", re.IGNORECASE)
DETECTION_DATASETS = {"voc_det": "voc", "coco_det": "coco", "fmnist_det": "fmnist_det"}


@dataclass(frozen=True)
class EvalSplit:
    """The data a record's numbers were measured on."""

    dataset: str  # fashion_mnist, imagefolder, coco, voc, fmnist_det
    split: str  # test, val, val2017, voc_2007_test, train2017, ...
    images: int | None
    training: bool  # a split the run trained on, or one named as a training split

    def label(self) -> str:
        """``"fashion_mnist test (10000 images)"``; a training split says so."""
        size = f" ({self.images} images)" if self.images is not None else ""
        named = self.split.startswith(self.dataset)  # voc_2007_test names its dataset
        text = f"{self.split}{size}" if named else f"{self.dataset} {self.split}{size}"
        return f"{text}, a training split" if self.training else text


def _described(text: Any) -> tuple[str, str, int] | None:
    """(dataset, split, images) of ``transfer.features.DataSpec.describe``'s words."""
    found = _DESCRIBED.match(text) if isinstance(text, str) else None
    if not found:
        return None
    return found["dataset"], found["split"], int(found["images"])


def _split_name(text: Any) -> str | None:
    """A detection split's name: ``"val (Fashion-MNIST test items)"`` -> ``"val"``."""
    if not isinstance(text, str) or not text.strip():
        return None
    return text.split(" (")[0].strip()


def _names(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [n for n in (_split_name(v) for v in items) if n]


def is_training_name(split: str) -> bool:
    """Whether a split's name says it is a training split (``train2017``, ``*_trainval``)."""
    return bool(_TRAINING_NAME.search(split))


def _classification(task: str, protocol: dict) -> EvalSplit | None:
    test_key, train_key = ("queries", "bank") if task == "knn" else ("test_split", "train_split")
    test = _described(protocol.get(test_key))
    if test is None:
        return None
    dataset, split, images = test
    train = _described(protocol.get(train_key))
    trained_on = {train[1]} if train else {"train"}  # low-shot: subsets of the training split
    training = split in trained_on or is_training_name(split)
    return EvalSplit(dataset, split, images, training)


def _detectron2_datasets(dump: Any) -> tuple[list[str], list[str]] | None:
    """(TEST, TRAIN) dataset names of a detectron2 ``cfg.dump()``."""
    if not isinstance(dump, str):
        return None
    import yaml  # pyyaml: a dependency of the project (the detectron2 configs)

    try:
        cfg = yaml.safe_load(dump)
    except yaml.YAMLError:
        return None
    data = cfg.get("DATASETS") if isinstance(cfg, dict) else None
    if not isinstance(data, dict):
        return None
    test, train = _names(data.get("TEST") or []), _names(data.get("TRAIN") or [])
    return (test, train) if test else None


def _detection(task: str, protocol: dict) -> EvalSplit | None:
    block = protocol.get("dataset")
    block = block if isinstance(block, dict) else {}
    test, train = _names(block.get("test")), _names(block.get("train"))
    if not test:
        found = _detectron2_datasets(protocol.get("config_dump"))
        if found is None:
            return None
        test, train = found
    images = protocol.get("test_images")
    images = images if isinstance(images, int) and not isinstance(images, bool) else None
    training = any(t in train or is_training_name(t) for t in test)
    return EvalSplit(DETECTION_DATASETS[task], " + ".join(test), images, training)


def evaluated_on(task: Any, protocol: Any) -> EvalSplit | None:
    """The split a ``task`` record with ``protocol`` was evaluated on; None when the protocol
    does not say (a record written before the task stated it)."""
    if not isinstance(protocol, dict) or not isinstance(task, str):
        return None
    if task in ("knn", "linear", "lowshot"):
        return _classification(task, protocol)
    if task in DETECTION_DATASETS:
        return _detection(task, protocol)
    return None
