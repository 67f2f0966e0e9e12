"""The wizard's steps, and which step asks each question of ``answers.QUESTIONS``.

Every question belongs to exactly one step (a test checks), so a question added to the
advisor cannot silently go missing from the wizard. Rank, alpha and batch size are asked as
the config fields they pin (``network_dim``, ``network_alpha``, ``train_batch_size``) on the
review step, where the advice for them is already on screen.
"""

from __future__ import annotations

from typing import Final

STEPS: Final = (
    "subject",
    "category",
    "details",
    "dataset",
    "hardware",
    "samples",
    "review",
    "finish",
)
TITLES: Final = {
    "subject": "Subject",
    "category": "Category",
    "details": "About the subject",
    "dataset": "Dataset",
    "hardware": "Hardware and base model",
    "samples": "Sample prompts",
    "review": "Review and edit",
    "finish": "Save or train",
}

STEP_OF: Final = {
    "subject": "subject",
    "category": "category",
    "male": "details",
    "prior": "details",
    "quality": "details",
    "goal": "details",
    "asymmetric": "details",
    "realistic": "details",
    "simple": "details",
    "images": "dataset",
    "vram": "hardware",
    "base": "hardware",
    "optimizer": "hardware",
    "network": "hardware",
    "batch_size": "review",
    "rank": "review",
    "alpha": "review",
}

#: The advice value each answer moves most: the side panel explains it while the answer's
#: field has the focus, so the "why" is on screen without leaving the form.
EXPLAINS: Final = {
    "subject": "network_dim",
    "category": "network_dim",
    "male": "network_dim",
    "prior": "total_steps",
    "quality": "total_steps",
    "goal": "network_dim",
    "asymmetric": "flip_aug",
    "realistic": "network_dim",
    "simple": "network_dim",
    "images": "total_steps",
    "vram": "optimizer_type",
    "base": "resolution",
    "optimizer": "optimizer_type",
    "network": "network_type",
    "processes": "total_steps",
    "sample_every": "save_every_n_epochs",
}

#: Answers asked on the review step as the config field they pin.
REVIEW_FIELDS: Final = {
    "batch_size": "train_batch_size",
    "rank": "network_dim",
    "alpha": "network_alpha",
}


def steps_for(subject: str) -> tuple[str, ...]:
    """The steps a subject walks: only characters have a difficulty category."""
    return tuple(step for step in STEPS if step != "category" or subject == "character")


def next_step(step: str, subject: str) -> str | None:
    steps = steps_for(subject)
    index = steps.index(step)
    return steps[index + 1] if index + 1 < len(steps) else None


def position(step: str, subject: str) -> str:
    """ "step 3/6: About the subject" for the header."""
    steps = steps_for(subject)
    number = steps.index(step) + 1 if step in steps else 0
    return f"step {number}/{len(steps)}: {TITLES[step]}"
