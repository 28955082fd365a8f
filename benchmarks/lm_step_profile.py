"""Where a `tune` step's time goes on a causal LM: projection, forward, backward, holdout and validation scoring.

Prints one JSON line per dataset × shots × fluency: CPU seconds of this process (time.process_time, so
that other jobs on a shared machine do not inflate them; run with one thread), mean of `--repeats`
calls after one warm-up call (validation: one call):

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/lm_step_profile.py \\
        --datasets sst2,agnews --shots 2,4 --fluency 0,0.5 --valid-limit 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
from lm_classification import DATA, DATASETS, numbers

from hardprompt.data import Example, few_shot, load_examples, subsample
from hardprompt.models.causal_lm import load_causal_lm
from hardprompt.objectives.classification import LMClassification, TaskFormat, parse_verbalizer
from hardprompt.optim.pez import NearestTokenProjection, PEZConfig, continuous_prompt
from hardprompt.vocab import Vocabulary


def timed(function: Callable[[], object], repeats: int) -> float:
    """Mean CPU seconds of `function` over `repeats` calls after one warm-up call (repeats 0: that one call)."""
    start = time.process_time()
    function()
    if repeats == 0:
        return round(time.process_time() - start, 4)
    start = time.process_time()
    for _ in range(repeats):
        function()
    return round((time.process_time() - start) / repeats, 4)


def profile(
    objective: LMClassification,
    project: NearestTokenProjection,
    soft_prompt: torch.Tensor,
    valid: list[Example],
    repeats: int,
) -> dict[str, float]:
    """Seconds of each part of a PEZ step on `objective`, and of scoring one prompt on holdout and `valid`."""
    table = objective.embedding_table.detach()
    ids = project(soft_prompt)

    def forward() -> None:
        with torch.no_grad():
            objective.evaluate(table[ids])

    def forward_backward() -> None:
        hard = table[ids].requires_grad_(True)
        torch.autograd.grad(objective.evaluate(hard).loss.sum(), hard)

    return {
        "train_tokens": int(objective._train_lengths.sum()),
        "project": timed(lambda: project(soft_prompt), repeats),
        "forward": timed(forward, repeats),
        "forward_backward": timed(forward_backward, repeats),
        "holdout": timed(lambda: objective.score_token_ids(ids[0].tolist()), repeats),
        f"valid_{len(valid)}": timed(lambda: objective.accuracy(ids[0].tolist(), valid), 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--datasets", default="sst2,agnews")
    parser.add_argument("--shots", type=numbers, default=[2, 4])
    parser.add_argument("--fluency", default="0,0.5")
    parser.add_argument("--prompt-len", type=int, default=10)
    parser.add_argument("--valid-limit", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lm = load_causal_lm(args.model, device="cpu")
    vocab = Vocabulary(lm.tokenizer, len(lm.embedding_table), lm.tokenize)
    table = lm.embedding_table.detach()
    project = NearestTokenProjection(table, vocab.allowed_ids)
    soft_prompt, _ = continuous_prompt(table, vocab.allowed_ids, PEZConfig(prompt_len=args.prompt_len))
    for name in args.datasets.split(","):
        spec = DATASETS[name]
        task = TaskFormat(spec["template"], parse_verbalizer(spec["verbalizer"]))
        examples = load_examples(DATA / spec["train"], spec["column"])
        valid = subsample(load_examples(DATA / spec["valid"], spec["column"]), args.valid_limit, seed=0)
        for shots in args.shots:
            train, holdout = few_shot(examples, shots, task.labels, 0)
            for fluency in (float(value) for value in args.fluency.split(",")):
                objective = LMClassification(lm, task, train, holdout, fluency=fluency)
                row = {"dataset": name, "shots": shots, "fluency": fluency}
                row.update(profile(objective, project, soft_prompt, valid, args.repeats))
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
