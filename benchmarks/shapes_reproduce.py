"""Table 1 in the shapes world: `reproduce` end to end with the shapes generator; prints JSON.

Writes a scene set (`hardprompt.shapes.scenes`: held-out scenes, captions, the grammar phrase bank),
then runs the harness: PEZ prompts optimized with the `shapes` tower, the bank baseline ranked by
the same tower, the true caption and a random-token floor; every prompt is rendered by the shapes
generator and scored against its target by the independently trained `shapes-reference` tower.
The command behind benchmarks/results/shapes_reproduce.md:

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/shapes_reproduce.py \\
        --scenes 20 --steps 300 --out benchmarks/results/shapes_reproduce.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hardprompt.apps.reproduce import reproduce
from hardprompt.generation import GenerationConfig
from hardprompt.io import write_json
from hardprompt.optim.pez import PEZConfig
from hardprompt.shapes.evaluation import EVALUATION_SEED
from hardprompt.shapes.scenes import PHRASES_FILE, write_scene_set


def run(args: argparse.Namespace, work: Path) -> dict:
    """Write the scenes into `work`, run the harness there, and collect the table and the prompts."""
    source = write_scene_set(work / "scenes", args.scenes, seed=args.scene_seed)
    config = PEZConfig(prompt_len=args.prompt_len, steps=args.steps, lr=args.lr, seed=args.seed)
    start = time.perf_counter()
    summary = reproduce(
        source,
        work / "run",
        optimizer="shapes",
        generator="shapes",
        scorer="shapes-reference",
        config=config,
        generation=GenerationConfig(n=args.n, seed=0),
        baseline_banks=[source.parent / PHRASES_FILE],
        random_baseline=True,
        device="cpu",
        progress=False,
    )
    seconds = time.perf_counter() - start
    per_scene = []
    for path in sorted((work / "run" / "records").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        per_scene.append(
            {
                "caption": record["caption"],
                **{
                    method: {"prompt": entry["prompt"], "reference": round(entry["reference_score"], 4)}
                    for method, entry in record["methods"].items()
                    if method != "caption"
                },
            }
        )
    return {
        "benchmark": "shapes_reproduce",
        "optimizer": "shapes",
        "generator": "shapes",
        "reference_scorer": "shapes-reference",
        "scenes": args.scenes,
        "scene_seed": args.scene_seed,
        "prompt_len": args.prompt_len,
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "images_per_prompt": args.n,
        "finished": summary["finished"],
        "seconds": round(seconds, 1),
        "rows": [
            {key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
            for row in summary["rows"]
        ],
        "per_scene": per_scene,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--scene-seed", type=int, default=EVALUATION_SEED, help="seed of the held-out scenes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="PEZ seed")
    parser.add_argument("--n", type=int, default=4, help="images generated per prompt")
    parser.add_argument("--work", default=None, help="keep the run in this new folder (default: temporary)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.work:
        record = run(args, Path(args.work))
    else:
        with tempfile.TemporaryDirectory() as work:
            record = run(args, Path(work))
    if args.out:
        write_json(args.out, record)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
