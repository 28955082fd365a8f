"""External optimizers run on the same problems as hardprompt's, for the benchmark: nanoGCG.

A peer takes a task instance, a budget and a seed and returns a `Result` scored by the instance's
own objective, so its row compares with hardprompt's methods on equal terms. nanoGCG (Zou et al.'s
GCG by GraySwan, `pip install --no-deps nanogcg scipy`) runs on lm-target instances: the same model,
chat turn (`instruction + PROMPT` in the user's message), target, ASCII-only tokens, and hardprompt
GCG's search width and top-k. Its best string is re-tokenized and scored by the objective, as
every method's is; its own loss is kept as `projected_score` (negated).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from ..errors import HardpromptError
from ..models.causal_lm import CausalLM
from ..optim.gcg import GCGConfig
from ..optim.result import Result
from .tasks import TaskInstance


def nanogcg_available() -> bool:
    """Whether the `nanogcg` package can be imported."""
    return importlib.util.find_spec("nanogcg") is not None


def nanogcg_steps(steps: int | None, forward_passes: int | None, search_width: int) -> int:
    """nanoGCG's step count within a budget: `steps`, or the steps whose candidates fit `forward_passes`."""
    limits = [steps] if steps is not None else []
    if forward_passes is not None:
        limits.append(forward_passes // (search_width + 1))  # + 1: the gradient's forward pass
    if not limits:
        raise HardpromptError("nanogcg has no time limit: give the benchmark --steps or --max-forward-passes")
    return max(1, min(limits))


def nanogcg_tokenizer(lm: CausalLM):
    """The tokenizer to give nanoGCG so that it lays out the chat turn as the lm-target objective does.

    nanoGCG deletes every occurrence of the BOS token's text from the chat template, assuming that
    tokenizing adds it back. Where tokenizing adds no BOS (ChatML models such as SmolLM2, whose BOS
    text `<|im_start|>` opens every turn), that would cut each turn's opening token; nanoGCG then gets
    a copy of the tokenizer without a BOS token.
    """
    if lm.prefix_ids or not lm.tokenizer.bos_token:
        return lm.tokenizer
    tokenizer = copy.deepcopy(lm.tokenizer)
    tokenizer.bos_token = None
    return tokenizer


def run_nanogcg(instance: TaskInstance, steps: int | None, forward_passes: int | None, seed: int) -> Result:
    """nanoGCG on an lm-target instance; its best string scored by the instance's objective."""
    import nanogcg
    from nanogcg.gcg import GCG

    inputs = instance.peer_inputs
    lm = inputs["lm"]
    defaults = GCGConfig()
    config = nanogcg.GCGConfig(
        num_steps=nanogcg_steps(steps, forward_passes, defaults.search_width),
        optim_str_init=" ".join(["x"] * instance.prompt_len),
        search_width=defaults.search_width,
        topk=defaults.top_k,
        seed=seed,
        allow_non_ascii=False,
        use_prefix_cache=False,  # nanoGCG 0.3's prefix cache predates transformers' Cache objects
        verbosity="WARNING",
    )

    class TimedGCG(GCG):
        """nanoGCG's GCG, noting when each step begins and how many prompt rows it evaluates."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.step_starts: list[float] = []
            self.rows = 0

        def compute_token_gradient(self, optim_ids: torch.Tensor) -> torch.Tensor:
            self.step_starts.append(time.perf_counter())
            self.rows += 1
            return super().compute_token_gradient(optim_ids)

        def _compute_candidates_loss_original(self, search_batch_size: int, input_embeds: torch.Tensor):
            self.rows += input_embeds.shape[0]
            return super()._compute_candidates_loss_original(search_batch_size, input_embeds)

    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    start = time.perf_counter()
    try:
        gcg = TimedGCG(lm.model, nanogcg_tokenizer(lm), config)
        found = gcg.run([{"role": "user", "content": inputs["instruction"] + "{optim_str}"}], inputs["target"])
    finally:  # nanoGCG turns deterministic algorithms on for the whole process when seeded
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    seconds = time.perf_counter() - start
    ends = [*gcg.step_starts[1:], start + seconds]
    history, best = [], -float("inf")
    for loss in found.losses:
        best = max(best, -loss)
        history.append(best)
    token_ids = instance.vocab.encode(found.best_string)
    return Result(
        prompt=found.best_string,
        score=instance.objective.score_token_ids(token_ids),
        projected_score=-found.best_loss,
        token_ids=token_ids,
        tokens=instance.vocab.tokens(token_ids),
        steps=len(found.losses),
        seconds=seconds,
        forward_passes=gcg.rows + 1,
        history=history,
        history_seconds=[round(t - start, 4) for t in ends[: len(history)]],
        method="nanogcg",
        model=instance.model,
        config={key: value for key, value in asdict(config).items() if key != "probe_sampling_config"},
    )


PEERS: dict[str, Callable[[TaskInstance, int | None, int | None, int], Result]] = {"nanogcg": run_nanogcg}
"""External optimizers by method name: run(instance, steps, forward_passes, seed) -> Result."""
