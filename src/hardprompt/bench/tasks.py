"""Benchmark tasks. Each turns a loaded model into task instances: an objective, a vocabulary, a length.

To add a task (the shapes world, LM target strings, ...), write a function
`build(encoder, options) -> list[TaskInstance]` and register `Task(name, default_model, build)`
in `TASKS`; the harness, the table and the plot need nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..apps.common import build_vocabulary
from ..apps.distill import distilled_length
from ..errors import HardpromptError
from ..io import read_lines
from ..models.base import TextEncoder
from ..objectives import FeatureSimilarity
from ..objectives.base import Objective
from ..optim.pez import random_allowed_ids
from ..optim.result import Result
from ..vocab import Vocabulary


@dataclass
class TaskInstance:
    """One problem: what every method optimizes, and extra metrics computed from its result."""

    label: str
    objective: Objective
    vocab: Vocabulary
    prompt_len: int
    metrics: Callable[[Result], dict[str, Any]] = field(default=lambda result: {})


@dataclass(frozen=True)
class Task:
    """A named family of task instances on a default model."""

    name: str
    default_model: str
    build: Callable[[TextEncoder, dict[str, Any]], list[TaskInstance]]
    summary: str


def recovered_fraction(found: list[int], planted: list[int]) -> float:
    """The fraction of planted tokens present in `found` (as a multiset: order ignored, repeats counted)."""
    overlap = Counter(found) & Counter(planted)
    return sum(overlap.values()) / len(planted)


def planted_instances(encoder: TextEncoder, options: dict[str, Any]) -> list[TaskInstance]:
    """Planted-prompt recovery: target = features of a random allowed token sequence; recover it from random init."""
    length = int(options.get("planted_len", 8))
    count = int(options.get("planted_count", 2))
    vocab = build_vocabulary(encoder)
    instances = []
    for index in range(count):
        planted = random_allowed_ids(vocab.allowed_ids, (length,), seed=10_000 + index).tolist()
        objective = FeatureSimilarity(encoder, encoder.encode_token_ids(planted))

        def metrics(result: Result, planted: list[int] = planted) -> dict[str, Any]:
            return {"recovered": recovered_fraction(result.token_ids, planted), "planted": vocab.decode(planted)}

        instances.append(TaskInstance(f"planted-{index}", objective, vocab, length, metrics))
    return instances


def distill_instances(encoder: TextEncoder, options: dict[str, Any]) -> list[TaskInstance]:
    """Prompt distillation of each prompt of a file (option `prompts`) at `ratio` (0.3) of its length."""
    path = options.get("prompts")
    if not path:
        raise HardpromptError("the distill task needs a prompt set: --prompts FILE")
    ratio = float(options.get("ratio", 0.3))
    vocab = build_vocabulary(encoder)
    instances = []
    for index, text in enumerate(read_lines(Path(path))):
        objective = FeatureSimilarity(encoder, encoder.encode_texts([text]))
        length = distilled_length(encoder.count_tokens(text), ratio)
        instances.append(TaskInstance(f"distill-{index}", objective, vocab, length))
    return instances


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("planted", "minilm", planted_instances, "recover a planted random token sequence from its features"),
        Task("distill", "minilm", distill_instances, "distill each prompt of a file to 0.3 of its length"),
    )
}
