"""Variants of one method's config on the bench's shapes instances, run interleaved (scene, seed, variant).

Each variant is `NAME=JSON`: fields of the method's config to override (`"method"` picks another
method, `hybrid` by default). Every run prints one JSON line (score, reference similarity, word
recovery, forward passes, the first history point's time: the end of a hybrid's start phase), then
one line per variant with its means. Interleaving keeps a shared machine's speed swings out of the
comparison.

    OMP_NUM_THREADS=1 python benchmarks/hybrid_variants.py --seeds 0,1 'k64={"scan_top_k": 64}' 'k32={}'
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from statistics import mean

from hardprompt.bench.tasks import shapes_instances
from hardprompt.optim.registry import build_config, run_method


def parse_variant(text: str) -> tuple[str, dict]:
    """`NAME=JSON` → (name, overrides); a bare NAME overrides nothing."""
    name, _, spec = text.partition("=")
    overrides = json.loads(spec or "{}")
    if not isinstance(overrides, dict):
        raise SystemExit(f"variant {name!r}: its JSON must be an object")
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=JSON, e.g. k32='{\"scan_top_k\": 32}'")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    args = parser.parse_args()
    variants = dict(parse_variant(text) for text in args.variants)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for instance in shapes_instances("shapes", "cpu", {"scenes": args.scenes}):
        for seed in seeds:
            for name, overrides in variants.items():
                fields = dict(overrides)
                method = fields.pop("method", "hybrid")
                config = build_config(
                    method,
                    prompt_len=instance.prompt_len,
                    steps=10**9,
                    max_seconds=args.max_seconds,
                    seed=seed,
                    progress=False,
                )
                result = run_method(instance.objective, instance.vocab, replace(config, **fields))
                row = {
                    "instance": instance.label,
                    "seed": seed,
                    "variant": name,
                    "score": round(result.score, 4),
                    **{key: round(value, 4) for key, value in instance.metrics(result).items()},
                    "forward_passes": result.forward_passes,
                    "first_point_s": result.history_seconds[0],
                    "prompt": result.prompt,
                }
                runs[name].append(row)
                print(json.dumps(row), flush=True)
    for name, rows in runs.items():
        keys = ("score", "reference_similarity", "word_recovery")
        print(json.dumps({"variant": name, "runs": len(rows), **{k: round(mean(r[k] for r in rows), 4) for k in keys}}))


if __name__ == "__main__":
    main()
