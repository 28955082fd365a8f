"""Prompt tuning for LM classification (paper §5): few-shot training, holdout early stopping, seeds, transfer."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import Example, few_shot
from ..errors import HardpromptError, require_finite_fields, require_seed
from ..models.causal_lm import CausalLM, load_causal_lm
from ..objectives.checkpoints import HoldoutCheckpoints
from ..objectives.classification import LMClassification, TaskFormat
from ..optim.registry import METHODS, Method
from ..vocab import Vocabulary, VocabularyRules

EMPTY = "empty"
"""The baseline: the template alone, no learned prompt (an evaluation, not an optimizer)."""

DEFAULT_LM = "smollm2"


def method_names() -> list[str]:
    """Every method `tune` accepts."""
    return [EMPTY, *METHODS]


@dataclass
class TuneSettings:
    """What `tune` runs; `steps` (when set) overrides `epochs`."""

    method: str = "pez"
    prompt_len: int = 10
    fluency: float = 0.0
    shots: int | None = None
    epochs: int = 100
    steps: int | None = None
    batch_size: int = 32
    holdout_every: int = 10
    seeds: Sequence[int] = (0,)
    max_seconds: float | None = None
    progress: bool = True
    method_options: dict[str, Any] = field(default_factory=dict)
    """Settings of the method's config by field name (lr, weight_decay, ...)."""

    def validate(self) -> None:
        """Raise HardpromptError on settings that cannot run."""
        require_finite_fields(self)
        if self.method not in method_names():
            raise HardpromptError(f"unknown method {self.method!r}; choose from {', '.join(method_names())}")
        if self.prompt_len < 1 and self.method != EMPTY:
            raise HardpromptError(f"prompt length must be at least 1 (got {self.prompt_len})")
        if self.steps is not None and self.steps < 1:
            raise HardpromptError(f"steps must be at least 1 (got {self.steps})")
        if self.epochs < 1:
            raise HardpromptError(f"epochs must be at least 1 (got {self.epochs})")
        if not self.seeds:
            raise HardpromptError("give at least one seed")
        for seed in self.seeds:
            require_seed(seed)
        if not 0.0 <= self.fluency <= 1.0:
            raise HardpromptError(f"the fluency weight must be in [0, 1] (got {self.fluency})")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise HardpromptError(f"max seconds must be positive (got {self.max_seconds})")
        if self.shots is not None and self.shots < 1:
            raise HardpromptError(f"shots must be at least 1 (got {self.shots})")
        if self.batch_size < 1 or self.holdout_every < 1:
            raise HardpromptError("batch size and holdout interval must be at least 1")

    def steps_for(self, train_size: int) -> int:
        """`steps`, or `epochs` passes over the training set in minibatches."""
        return self.steps or self.epochs * math.ceil(train_size / self.batch_size)


def method_config(method: Method, values: dict[str, Any]) -> Any:
    """The method's config dataclass, filled by field name; an option it does not have is an error."""
    names = {f.name for f in dataclasses.fields(method.config_class)}
    unknown = set(values) - names
    if unknown:
        raise HardpromptError(f"method {method.name} has no setting(s): {', '.join(sorted(unknown))}")
    config = method.config_class(**values)
    config.validate()
    return config


def split_holdout(examples: Sequence[Example], seed: int) -> tuple[list[Example], list[Example] | None]:
    """Without few-shot sampling: 10% of the training examples (at least 1) become the holdout set."""
    if len(examples) < 10:
        return list(examples), None
    shuffled = random.Random(seed).sample(list(examples), len(examples))
    cut = max(1, len(examples) // 10)
    return shuffled[cut:], shuffled[:cut]


def _round_trip(vocab: Vocabulary, token_ids: Sequence[int]) -> list[int]:
    return vocab.encode(vocab.acceptable_text(token_ids))


def _tune_one_seed(
    lm: CausalLM,
    vocab: Vocabulary,
    task: TaskFormat,
    examples: Sequence[Example],
    valid: Sequence[Example],
    settings: TuneSettings,
    seed: int,
    valid_cache: dict[tuple[int, ...], float],
) -> dict[str, Any]:
    """One seed: sample the data, optimize, score. `valid_cache` spares re-scoring a hard prompt seen before."""
    if settings.shots is not None:
        train, holdout = few_shot(examples, settings.shots, task.labels, seed)
    else:
        train, holdout = split_holdout(examples, seed)
    objective = LMClassification(
        lm, task, train, holdout, fluency=settings.fluency, batch_size=settings.batch_size, seed=seed
    )
    row: dict[str, Any] = {"seed": seed, "train_examples": len(train), "holdout_examples": len(objective.holdout)}
    if settings.method == EMPTY:
        ids: list[int] = []
        row.update(prompt="", token_ids=ids, holdout_accuracy=objective.score_token_ids(ids), steps=0, seconds=0.0)
    else:
        row.update(_optimize(objective, vocab, settings, seed, METHODS[settings.method]))
    soft_prompt = row.pop("soft_prompt", None)
    if soft_prompt is not None:
        row["valid_accuracy"] = objective.accuracy(soft_prompt, valid)
    else:
        key = tuple(row["token_ids"])
        if key not in valid_cache:
            valid_cache[key] = objective.accuracy(row["token_ids"], valid)
        row["valid_accuracy"] = valid_cache[key]
    return row


def _optimize(
    objective: LMClassification, vocab: Vocabulary, settings: TuneSettings, seed: int, method: Method
) -> dict[str, Any]:
    """Run the method with holdout checkpoints; the prompt is the best on the holdout set.

    FluentPrompt adds the fluency term itself: γ becomes its `fluency_weight` and the objective's
    own fluency weight is set to 0. A soft prompt (never projected) is kept and scored as embeddings.
    """
    steps = settings.steps_for(objective.train_size)
    values: dict[str, Any] = dict(
        prompt_len=settings.prompt_len,
        steps=steps,
        seed=seed,
        max_seconds=settings.max_seconds,
        progress=settings.progress,
    )
    if method.name == "fluentprompt":
        values["fluency_weight"] = objective.fluency
        objective.fluency = 0.0
    config = method_config(method, {**values, **settings.method_options})
    soft = not method.hard
    checkpoints = HoldoutCheckpoints(
        objective,
        objective.score_token_ids,
        min(settings.holdout_every, steps),
        score_embeds=(lambda embeds: objective.accuracy(embeds, objective.holdout)) if soft else None,
    )
    cpu_start = time.process_time()
    result = method.run(checkpoints, vocab, config)
    cpu_seconds = time.process_time() - cpu_start - checkpoints.cpu_seconds
    ids, holdout_accuracy = list(result.token_ids), result.score
    row: dict[str, Any] = {}
    if soft:
        row["soft_prompt"] = checkpoints.best_embeds
        holdout_accuracy = checkpoints.best_score
    elif checkpoints.best_ids is not None:
        checkpoint_ids = _round_trip(vocab, checkpoints.best_ids)
        checkpoint_accuracy = objective.score_token_ids(checkpoint_ids)
        if checkpoint_accuracy >= holdout_accuracy:
            ids, holdout_accuracy = checkpoint_ids, checkpoint_accuracy
    optimization_seconds = max(0.0, result.seconds - checkpoints.seconds)
    row.update(
        prompt=vocab.decode(ids),
        token_ids=ids,
        hard=method.hard,
        holdout_accuracy=holdout_accuracy,
        train_score=result.projected_score,
        steps=result.steps,
        seconds=result.seconds,
        seconds_per_step=round(optimization_seconds / max(1, result.steps), 4),
        cpu_seconds_per_step=round(cpu_seconds / max(1, result.steps), 4),
        checkpoints=checkpoints.history,
        interrupted=result.interrupted,
    )
    return row


def summarize(rows: Sequence[dict[str, Any]], key: str = "valid_accuracy") -> dict[str, float]:
    """Mean and (sample) standard deviation of `key` over seeds."""
    values = [row[key] for row in rows]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def tune(
    model: str | CausalLM,
    train: Sequence[Example],
    valid: Sequence[Example],
    task: TaskFormat,
    settings: TuneSettings | None = None,
    rules: VocabularyRules | None = None,
    device: str = "auto",
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Learn a prompt for each seed and report holdout and validation accuracy (mean ± std over seeds).

    `on_seed` is called with each seed's row as soon as it is done (to save partial results).
    """
    settings = settings or TuneSettings()
    settings.validate()
    if not train:
        raise HardpromptError("no training examples")
    if not valid:
        raise HardpromptError("no validation examples")
    task.check_labels(train, "the training data")
    task.check_labels(valid, "the validation data")
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device)
    vocab = Vocabulary(lm.tokenizer, len(lm.embedding_table), lm.tokenize, rules or VocabularyRules())
    rows = []
    report: dict[str, Any] = {
        "model": lm.name,
        "method": settings.method,
        "template": task.template,
        "verbalizer": task.verbalizer,
        "settings": {**dataclasses.asdict(settings), "seeds": list(settings.seeds)},
        "valid_examples": len(valid),
        "allowed_tokens": len(vocab),
        "seeds": rows,
    }
    valid_cache: dict[tuple[int, ...], float] = {}
    for seed in settings.seeds:
        rows.append(_tune_one_seed(lm, vocab, task, train, valid, settings, seed, valid_cache))
        report["valid_accuracy"] = summarize(rows)
        report["holdout_accuracy"] = summarize(rows, "holdout_accuracy")
        if on_seed is not None:
            on_seed(report)
        if rows[-1].get("interrupted"):
            break
    return report


def evaluate_prompt(
    prompt: str,
    model: str | CausalLM,
    examples: Sequence[Example],
    task: TaskFormat,
    device: str = "auto",
) -> dict[str, Any]:
    """Accuracy of a prompt string (e.g. learned on another model) on labelled examples: transfer."""
    if not examples:
        raise HardpromptError("no examples to evaluate on")
    task.check_labels(examples)
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device)
    objective = LMClassification(lm, task, examples[:1])
    ids = lm.tokenize(prompt.strip()) if prompt.strip() else []
    return {
        "prompt": prompt,
        "model": lm.name,
        "template": task.template,
        "verbalizer": task.verbalizer,
        "examples": len(examples),
        "accuracy": objective.accuracy(ids, examples),
    }
