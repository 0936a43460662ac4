"""Detection fine-tuning schedules: the MoCo protocol's as presets, scaled by batch size.

MoCo / SimSiam (docs/recipes.md, "Detection transfer"): 16 images per batch, base lr 0.02,
SGD momentum 0.9, weight decay 1e-4 (detectron2's default), linear warmup, lr × 0.1 at each step.
- ``voc_24k``: 24k iterations, steps 18k/22k, 100 warmup iterations, train short side
  480–800 step 32, test 800 (max long side 1333).
- ``coco_1x``: 90k iterations, steps 60k/80k, train short side 640–800 step 32, test 800
  (detectron2's default 1000 warmup iterations).
- ``fmnist``: the CPU-scale schedule of the embedded set (our choice, not a paper's).

``scaled(batch)`` applies the linear scaling rule (Goyal et al. 2017): iterations (steps,
warmup) × 16/batch and lr × batch/16, so a preset sees the same number of images at any batch.
``--iters`` rescales the steps proportionally; ``--short-side`` fixes train and test size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class DetSchedule:
    name: str
    iters: int
    batch_size: int
    base_lr: float
    steps: tuple[int, ...]
    warmup_iters: int
    train_sizes: tuple[int, ...]
    test_size: int
    max_size: int
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_factor: float = 0.001
    gamma: float = 0.1
    source: str = ""

    def scaled(self, batch_size: int) -> DetSchedule:
        """The same schedule at another batch size (linear scaling rule)."""
        f = self.batch_size / batch_size
        return replace(
            self,
            iters=max(1, round(self.iters * f)),
            batch_size=batch_size,
            base_lr=self.base_lr / f,
            steps=tuple(max(1, round(s * f)) for s in self.steps),
            warmup_iters=round(self.warmup_iters * f),
        )

    def with_iters(self, iters: int) -> DetSchedule:
        """A shorter (or longer) run with the steps and warmup at the same fractions."""
        f = iters / self.iters
        return replace(
            self,
            iters=iters,
            steps=tuple(max(1, round(s * f)) for s in self.steps),
            warmup_iters=min(self.warmup_iters, max(1, iters // 10)),
        )

    def with_short_side(self, size: int) -> DetSchedule:
        return replace(
            self, train_sizes=(size,), test_size=size, max_size=max(self.max_size, size * 5 // 3)
        )

    def lr_at(self, it: int) -> float:
        lr = self.base_lr * self.gamma ** sum(it >= s for s in self.steps)
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "voc_24k": DetSchedule(
        "voc_24k", 24000, 16, 0.02, (18000, 22000), 100, tuple(range(480, 801, 32)), 800, 1333,
        source="MoCo detection/configs/pascal_voc_R_50_C4_24k_moco.yaml",
    ),
    "coco_1x": DetSchedule(
        "coco_1x", 90000, 16, 0.02, (60000, 80000), 1000, tuple(range(640, 801, 32)), 800, 1333,
        source="MoCo detection/configs/coco_R_50_C4_1x_moco.yaml",
    ),
    "fmnist": DetSchedule(
        "fmnist", 200, 4, 0.02, (150, 180), 20, (96,), 96, 160,
        source="siamhub CPU-scale schedule for the embedded fmnist_det set",
    ),
}  # fmt: skip


def steps_before_end(sched: DetSchedule) -> DetSchedule:
    """The schedule with the lr steps that act, strictly increasing below its last iteration
    (what detectron2's ``MultiStepParamScheduler`` accepts): a step that repeats an earlier one
    (a short ``--iters`` rounds two steps to one iteration) moves one iteration later, and a
    step at or past the end, which would never act, is dropped."""
    steps: list[int] = []
    for s in sorted(sched.steps):
        s = max(s, steps[-1] + 1) if steps else s
        if 0 < s < sched.iters:
            steps.append(s)
    return replace(sched, steps=tuple(steps))
