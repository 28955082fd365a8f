"""Few-shot LM classification on SST-2 and AG News: methods × shots × seeds; prints one JSON line per setting.

Example (the command behind benchmarks/results/lm_classification.md):

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/lm_classification.py \
        --shots 2,4 --seeds 0,1,2 --steps 15 --valid-limit 100 --jsonl benchmarks/results/lm_classification.jsonl

A variant is METHOD or METHOD@γ (fluency weight), e.g. pez@0.5.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from hardprompt.apps.tune import TuneSettings, tune
from hardprompt.data import load_examples, subsample
from hardprompt.models.causal_lm import load_causal_lm
from hardprompt.objectives.classification import TaskFormat, parse_verbalizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

DATASETS = {
    "sst2": dict(
        train="sst2/train.tsv",
        valid="sst2/validation.tsv",
        column="sentence",
        template="{input} It was {mask}",
        verbalizer="0:negative,1:positive",
    ),
    "agnews": dict(
        train="agnews/train.tsv",
        valid="agnews/test.tsv",
        column="text",
        template="{input} It was about {mask}",
        verbalizer="World:politics,Sports:sports,Business:business,Sci/Tech:technology",
    ),
}


def numbers(value: str) -> list[int]:
    return [int(item) for item in value.split(",") if item.strip()]


def mean_of(rows: list[dict], key: str) -> float | None:
    """Mean of `key` over the seeds' rows that have it (None for the empty baseline)."""
    values = [row[key] for row in rows if key in row]
    return sum(values) / len(values) if values else None


VARIANT_ORDER = ["empty", "pez", "pez@0.5", "autoprompt-sgd", "fluentprompt@0.5", "soft"]


def table_order(row: dict) -> tuple:
    """Rows by dataset, shots, then the variants in VARIANT_ORDER (others after, by name)."""
    variant = row["variant"]
    rank = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
    return row["dataset"], row["shots"], rank, variant


def markdown_table(jsonl: str) -> str:
    """One row per dataset × shots × variant: validation accuracy mean ± std, holdout, s/step, a prompt."""
    lines = [
        "| dataset | k | method | valid acc (mean ± std) | per seed | holdout acc | s/step (CPU s/step) | steps "
        "| example prompt (seed 0) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with open(jsonl, encoding="utf-8") as file:
        rows = [json.loads(line) for line in file if line.strip()]
    rows.sort(key=table_order)
    for row in rows:
        valid, holdout = row["valid_accuracy"], row["holdout_accuracy"]
        speed = f"{row['seconds_per_step']:.2f}" if row["seconds_per_step"] is not None else "–"
        if row.get("cpu_seconds_per_step") is not None:
            speed += f" ({row['cpu_seconds_per_step']:.2f})"
        prompt = row["prompts"][0].replace("|", "\\|").replace("\n", " ")
        per_seed = " ".join(f"{seed['valid_accuracy']:.3f}" for seed in row["report"]["seeds"])
        lines.append(
            f"| {row['dataset']} | {row['shots']} | {row['variant']} | {valid['mean']:.3f} ± {valid['std']:.3f} "
            f"| {per_seed} | {holdout['mean']:.3f} | {speed} | {row['steps']} | `{prompt}` |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--datasets", default="sst2,agnews")
    parser.add_argument("--variants", default="empty,pez,pez@0.5")
    parser.add_argument("--shots", type=numbers, default=[2, 4])
    parser.add_argument("--seeds", type=numbers, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: 100 epochs)")
    parser.add_argument("--prompt-len", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--optimizer", default=None, help="adamw or adafactor (pez, soft; default adamw)")
    parser.add_argument("--holdout-every", type=int, default=5)
    parser.add_argument("--valid-limit", type=int, default=None, help="fixed random validation subset")
    parser.add_argument("--jsonl", default=None, help="append each setting's full report here")
    parser.add_argument("--table", default=None, metavar="JSONL", help="only print the Markdown table of a JSONL file")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(args.table))
        return 0

    torch.manual_seed(0)
    start = time.perf_counter()
    lm = load_causal_lm(args.model, device="cpu")
    print(json.dumps({"model": args.model, "load_seconds": round(time.perf_counter() - start, 1)}), flush=True)
    for name in args.datasets.split(","):
        spec = DATASETS[name]
        task = TaskFormat(spec["template"], parse_verbalizer(spec["verbalizer"]))
        train = load_examples(DATA / spec["train"], spec["column"])
        valid = subsample(load_examples(DATA / spec["valid"], spec["column"]), args.valid_limit, seed=0)
        for shots in args.shots:
            for variant in args.variants.split(","):
                method, _, fluency = variant.partition("@")
                settings = TuneSettings(
                    method=method,
                    prompt_len=args.prompt_len,
                    fluency=float(fluency or 0.0),
                    shots=shots,
                    steps=args.steps,
                    holdout_every=args.holdout_every,
                    seeds=args.seeds,
                    progress=False,
                    method_options={
                        name: value
                        for name, value in (("lr", args.lr), ("optimizer", args.optimizer))
                        if value is not None and (name != "optimizer" or method in ("pez", "soft"))
                    },
                )
                report = tune(lm, train, valid, task, settings)
                rows = report["seeds"]
                summary = {
                    "dataset": name,
                    "shots": shots,
                    "variant": variant,
                    "valid_accuracy": report["valid_accuracy"],
                    "holdout_accuracy": report["holdout_accuracy"],
                    "seconds_per_step": mean_of(rows, "seconds_per_step"),
                    "cpu_seconds_per_step": mean_of(rows, "cpu_seconds_per_step"),
                    "steps": rows[0]["steps"],
                    "valid_examples": len(valid),
                    "prompts": [r["prompt"] for r in rows],
                }
                print(json.dumps(summary, ensure_ascii=False), flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a", encoding="utf-8") as file:
                        file.write(json.dumps({**summary, "report": report}, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
