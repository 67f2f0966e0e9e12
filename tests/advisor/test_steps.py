"""The one step arithmetic (advisor/steps.py), as sd-scripts counts (train_network.py,
library/train_util.py at kohya-ss/sd-scripts 48d368f):

- ``max_train_steps = max_train_epochs * ceil(len(train_dataloader) / num_processes /
  gradient_accumulation_steps)``, and ``max_train_epochs`` overrides ``max_train_steps``;
- ``len(train_dataloader)`` is the number of bucket batches: ``ceil(len(bucket) /
  batch_size)`` summed over the buckets (``BaseDataset.make_buckets``);
- ``DreamBoothDataset`` registers regularization images until their views reach the number
  of training views (``num_train_images``), adding one repeat at a time in a loop, so an
  epoch with regularization images has twice the training views;
- a snapshot is saved after every epoch divisible by ``save_every_n_epochs`` except the
  last, which is the final file.
"""

from __future__ import annotations

import pytest

from tuilora.advisor import steps


def test_regularization_fills_up_to_the_training_views() -> None:
    assert steps.regularization_fill([1, 2, 3, 4, 5], ["a", "b"]) == [1, 2, 3, 4, 5, *"ababa"]
    assert steps.regularization_fill([1, 2], ["a", "b", "c"]) == [1, 2, "a", "b"]
    assert steps.regularization_fill([1, 2], []) == [1, 2]


def test_each_bucket_ends_in_its_own_partial_batch() -> None:
    assert steps.bucket_batches([5, 3], 2) == 3 + 2
    assert steps.bucket_batches([8], 2) == 4
    assert steps.bucket_batches([0, 4], 4) == 1


def test_processes_and_accumulation_share_the_batches() -> None:
    assert steps.optimizer_steps(21, 1, 1) == 21
    assert steps.optimizer_steps(21, 2, 1) == 11
    assert steps.optimizer_steps(21, 2, 2) == 6
    with pytest.raises(ValueError):
        steps.optimizer_steps(10, 0, 1)


def test_epochs_win_over_steps() -> None:
    assert steps.training_length(40, 25, 1600) == (1000, 25)
    assert steps.training_length(40, None, 1600) == (1600, 40)
    assert steps.training_length(100000, None, 3000) == (3000, 1)


def test_an_epoch_plan_without_a_dataset() -> None:
    plan = steps.epoch_plan(40, 1, regularization=True)
    assert (plan.views, plan.batches, plan.steps) == (80, 80, 80)
    plan = steps.epoch_plan(41, 2, processes=2, gradient_accumulation_steps=2)
    assert (plan.batches, plan.steps) == (21, 6)
    assert "41 image views" in plan.sentence and "2 processes" in plan.sentence
    assert (
        steps.epoch_plan(1, 1).sentence
        == "1 image view; ceil(1 / batch 1) = 1 batch; 1 step per epoch."
    )


def test_an_epoch_plan_from_buckets() -> None:
    plan = steps.epoch_plan(14, 2, bucket_views=[10, 4])
    assert (plan.batches, plan.steps, plan.buckets, plan.reg_views) == (7, 7, 2, 0)
    plan = steps.epoch_plan(14, 2, regularization=True, bucket_views=[20, 8])
    assert (plan.reg_views, plan.batches) == (14, 14)


def test_snapshots_stay_readable() -> None:
    assert steps.save_every(10) == 1
    assert steps.save_every(25) == 4
    assert steps.save_every(200) == 10
    assert steps.snapshots(25, 4) == 6  # epochs 4, 8, ..., 24; the 25th is the final file
    assert steps.snapshots(200, steps.save_every(200)) <= steps.MAX_SNAPSHOTS
    assert steps.snapshots(8, 4) == 1  # epoch 4; epoch 8 is the last, saved as the final file


def test_plural_words() -> None:
    assert steps.count(1, "image") == "1 image"
    assert steps.count(2, "batch", "batches") == "2 batches"
