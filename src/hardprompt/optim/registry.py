"""The optimizer registry: method name → config class and run function, shared by the CLI, apps and benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import HardpromptError
from ..objectives.base import BatchedObjective, Objective
from ..vocab import Vocabulary
from . import autoprompt, fluentprompt, gcg, hybrid, pez, random_search, soft
from .result import Result


@dataclass(frozen=True)
class Method:
    """One optimizer: its config dataclass, its `run(objective, vocab, config)`, and a one-line summary."""

    name: str
    config_class: type
    run: Callable[[Objective, Vocabulary, Any], Result]
    summary: str
    hard: bool = True
    run_each: Callable[[BatchedObjective, Vocabulary, Any, Sequence[int]], list[Result]] | None = None
    """Optimizes a batched objective's problems together (see `run_each_problem`); None: one at a time."""


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "pez",
            pez.PEZConfig,
            pez.run,
            "projected gradient descent with a continuous state (the paper)",
            run_each=pez.run_each,
        ),
        Method("autoprompt", autoprompt.AutoPromptConfig, autoprompt.run, "HotFlip top-k swaps at one position"),
        Method("autoprompt-sgd", autoprompt.AutoPromptSGDConfig, autoprompt.run_sgd, "projected SGD, no state"),
        Method("fluentprompt", fluentprompt.FluentPromptConfig, fluentprompt.run, "projected Langevin + fluency"),
        Method("gcg", gcg.GCGConfig, gcg.run, "greedy coordinate gradient with retokenization filter"),
        Method(
            "hybrid",
            hybrid.HybridConfig,
            hybrid.run,
            "a text target's words or a token scan (else PEZ) starts, then GCG polishes",
        ),
        Method("random", random_search.RandomSearchConfig, random_search.run, "random single-token swaps"),
        Method("soft", soft.SoftConfig, soft.run, "continuous prompt, never projected (upper bound)", hard=False),
    )
}
DEFAULT_METHOD = "pez"
MethodConfig = (
    pez.PEZConfig
    | autoprompt.AutoPromptConfig
    | autoprompt.AutoPromptSGDConfig
    | fluentprompt.FluentPromptConfig
    | gcg.GCGConfig
    | hybrid.HybridConfig
    | random_search.RandomSearchConfig
    | soft.SoftConfig
)


def get_method(name: str) -> Method:
    """The registered method called `name`, or a one-line HardpromptError."""
    if name not in METHODS:
        raise HardpromptError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def method_of(config: MethodConfig) -> Method:
    """The method whose config class `config` is an instance of (exact class)."""
    for method in METHODS.values():
        if type(config) is method.config_class:
            return method
    raise HardpromptError(f"{type(config).__name__} is not the config of a registered method")


def config_fields(name: str) -> set[str]:
    """The settings the method `name` accepts."""
    return {f.name for f in fields(get_method(name).config_class)}


def build_config(name: str, **options: Any) -> MethodConfig:
    """The config of method `name` from common options; None values mean "the method's default".

    An option the method does not have (say `lr` for gcg) is an error when it is set.
    """
    accepted = config_fields(name)
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - accepted)
    if unknown:
        names = ", ".join("--" + key.replace("_", "-") for key in unknown)
        raise HardpromptError(f"method {name} has no setting {names}")
    config = get_method(name).config_class(**given)
    config.validate()
    return config


def run_method(objective: Objective, vocab: Vocabulary, config: MethodConfig) -> Result:
    """Run the method that `config` belongs to (on a copy of it) and return its result."""
    return method_of(config).run(objective, vocab, replace(config))


def batches_problems(config: MethodConfig) -> bool:
    """Whether the method of `config` optimizes a batched objective's problems together (else one by one)."""
    return method_of(config).run_each is not None


def run_each_problem(
    objective: BatchedObjective, vocab: Vocabulary, config: MethodConfig, seeds: Sequence[int]
) -> list[Result]:
    """One result per problem of `objective`, problem i with seed `seeds[i]`.

    Methods with a batched `run_each` (PEZ) optimize all problems in one forward pass per step;
    the others run on each problem's own objective in turn. A run stopped by Ctrl-C ends the
    list early: its interrupted result is the last one.
    """
    method = method_of(config)
    if method.run_each is not None:
        return method.run_each(objective, vocab, replace(config), list(seeds))
    results = []
    for index, seed in enumerate(seeds):
        result = method.run(objective.problem(index), vocab, replace(config, seed=seed))
        results.append(result)
        if result.interrupted:
            break
    return results
