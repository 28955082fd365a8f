"""Benchmark tasks. Each turns a loaded model into task instances: an objective, a vocabulary, a length.

To add a task, write a function `build(model, device, options) -> list[TaskInstance]` (load the
model any way it needs; `encoder` and `causal_lm` below cache models across tasks) and register
`Task(name, default_model, build, summary)` in `TASKS`; the harness, the table and the plot need
nothing else. A task instance may also carry `peer_inputs` for external optimizers (`bench.peers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..apps.common import build_vocabulary, similarity_objective
from ..apps.distill import distilled_length
from ..apps.target import target_objective
from ..errors import HardpromptError
from ..io import read_lines
from ..models import TextEncoder, load_text_encoder
from ..models.causal_lm import CausalLM, load_causal_lm
from ..objectives import FeatureSimilarity
from ..objectives.base import Objective
from ..optim.pez import random_allowed_ids
from ..optim.result import Result
from ..shapes import render
from ..shapes.evaluation import evaluation_scenes, word_recovery
from ..vocab import Vocabulary


@dataclass
class TaskInstance:
    """One problem: what every method optimizes, and extra metrics computed from its result."""

    label: str
    model: str
    objective: Objective
    vocab: Vocabulary
    prompt_len: int
    max_prompt_len: int | None = None
    metrics: Callable[[Result], dict[str, Any]] = field(default=lambda result: {})
    peer_inputs: dict[str, Any] | None = None
    """What external optimizers need to run the same problem (lm-target: the model, instruction and target)."""


@dataclass(frozen=True)
class Task:
    """A named family of task instances on a default model."""

    name: str
    default_model: str
    build: Callable[[str, str, dict[str, Any]], list[TaskInstance]]
    summary: str


@cache
def encoder(model: str, device: str) -> TextEncoder:
    """A text encoder loaded once per (model, device) for all tasks of a suite."""
    return load_text_encoder(model, device=device)


@cache
def causal_lm(model: str, device: str) -> CausalLM:
    """A causal LM loaded once per (model, device) for all tasks of a suite."""
    return load_causal_lm(model, device=device)


def recovered_fraction(found: list[int], planted: list[int]) -> float:
    """The fraction of planted tokens present in `found` (as a multiset: order ignored, repeats counted)."""
    overlap = Counter(found) & Counter(planted)
    return sum(overlap.values()) / len(planted)


def planted_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """Planted-prompt recovery: target = features of a random allowed token sequence; recover it from random init."""
    text_encoder = encoder(model, device)
    length = int(options.get("planted_len", 8))
    count = int(options.get("planted_count", 2))
    if not 1 <= length <= text_encoder.max_prompt_len:
        raise HardpromptError(f"the planted length must be from 1 to {text_encoder.max_prompt_len} (got {length})")
    if count < 1:
        raise HardpromptError(f"the planted count must be at least 1 (got {count})")
    vocab = build_vocabulary(text_encoder)
    instances = []
    for index in range(count):
        planted = random_allowed_ids(vocab.allowed_ids, (length,), seed=10_000 + index).tolist()
        objective = FeatureSimilarity(text_encoder, text_encoder.encode_token_ids(planted))

        def metrics(result: Result, planted: list[int] = planted) -> dict[str, Any]:
            return {"recovered": recovered_fraction(result.token_ids, planted), "planted": vocab.decode(planted)}

        instances.append(
            TaskInstance(
                f"planted-{index}", text_encoder.name, objective, vocab, length, text_encoder.max_prompt_len, metrics
            )
        )
    return instances


def distill_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """Prompt distillation of each prompt of a file (option `prompts`) to `prompt_len` tokens, or else
    at `ratio` (0.3) of its length; `words_only` restricts the vocabulary to whole English words."""
    path = options.get("prompts")
    if not path:
        raise HardpromptError("the distill task needs a prompt set: --prompts FILE")
    ratio = float(options.get("ratio", 0.3))
    text_encoder = encoder(model, device)
    vocab = build_vocabulary(text_encoder, words_only=bool(options.get("words_only")))
    instances = []
    for index, text in enumerate(read_lines(Path(path))):
        objective, _ = similarity_objective(text_encoder, texts=[text])
        length = int(options.get("prompt_len") or distilled_length(text_encoder.count_tokens(text), ratio))
        label = f"distill-{index}"
        instances.append(TaskInstance(label, text_encoder.name, objective, vocab, length, text_encoder.max_prompt_len))
    return instances


def shapes_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """Image → prompt in the shapes world: each of `scenes` (2) held-out rendered scenes is a target.

    Metrics: the fraction of the scene's color and shape words in the prompt, and the cosine of the
    prompt to the image under the independently trained `shapes-reference` tower.
    """
    text_encoder = encoder(model, device)
    if not text_encoder.supports_images:
        raise HardpromptError(f"the shapes task needs an image-text model such as 'shapes', not {model!r}")
    reference = encoder("shapes-reference", device)
    vocab = build_vocabulary(text_encoder, words_only=bool(options.get("words_only")))
    length = int(options.get("prompt_len") or 8)
    scenes = int(options.get("scenes", 2))
    if scenes < 1:
        raise HardpromptError(f"the number of scenes must be at least 1 (got {scenes})")
    instances = []
    for index, scene in enumerate(evaluation_scenes(scenes)):
        image = render(scene)
        objective = FeatureSimilarity(text_encoder, text_encoder.encode_images([image]))
        reference_features = reference.encode_images([image])

        def metrics(result: Result, scene=scene, reference_features=reference_features) -> dict[str, Any]:
            similarity = (reference.encode_texts([result.prompt]) @ reference_features.T).item()
            return {"word_recovery": word_recovery(result.prompt, scene), "reference_similarity": similarity}

        label = f"scene-{index}"
        instances.append(
            TaskInstance(label, text_encoder.name, objective, vocab, length, text_encoder.max_prompt_len, metrics)
        )
    return instances


DEFAULT_TARGETS = (
    ("Tell me a joke.", "Sure, here is a joke about cats"),
    ("What is 2 + 2?", "2 + 2 is 5"),
)
"""(instruction, target) pairs of the lm-target task when no `--targets` file is given."""


def read_targets(path: str) -> list[tuple[str, str]]:
    """(instruction, target) pairs from a file: one per line, `INSTRUCTION<TAB>TARGET` or just `TARGET`."""
    pairs = []
    for line in read_lines(Path(path)):
        instruction, _, target = line.rpartition("\t")
        if not target.strip():
            raise HardpromptError(f"{path}: a line has no target text: {line!r}")
        pairs.append((instruction, target))
    return pairs


def lm_target_instances(model: str, device: str, options: dict[str, Any]) -> list[TaskInstance]:
    """LM target strings: a prompt inside the user's turn that makes the LM answer with a given text.

    The loss is the target's mean NLL (score = −NLL); prompts are ASCII tokens, as nanoGCG's. Pairs
    come from `targets` (a file) or DEFAULT_TARGETS. Metric: does greedy decoding say the target.
    """
    lm = causal_lm(model, device)
    vocab = build_vocabulary(lm, ascii_only=True)
    pairs = read_targets(options["targets"]) if options.get("targets") else list(DEFAULT_TARGETS)
    length = int(options.get("prompt_len") or 10)
    instances = []
    for index, (instruction, target) in enumerate(pairs):
        objective = target_objective(lm, target, instruction)

        def metrics(result: Result, objective=objective) -> dict[str, Any]:
            return {
                "target_nll": -result.score,
                "greedy_says_target": objective.says_target(result.token_ids),
            }

        peer = {"lm": lm, "instruction": instruction, "target": target}
        instances.append(
            TaskInstance(f"target-{index}", model, objective, vocab, length, lm.max_positions, metrics, peer)
        )
    return instances


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("planted", "minilm", planted_instances, "recover a planted random token sequence from its features"),
        Task("distill", "minilm", distill_instances, "distill each prompt of a file to 0.3 of its length"),
        Task("shapes", "shapes", shapes_instances, "invert rendered scenes of the shapes world into prompts"),
        Task("lm-target", "smollm2", lm_target_instances, "make a causal LM answer with a given target text"),
    )
}
