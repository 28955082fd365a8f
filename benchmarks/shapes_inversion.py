"""Image → prompt in the shapes world: word recovery and reference-scorer similarity; prints JSON.

Inverts a fixed set of held-out rendered scenes with the `shapes` model (all scenes in one batched
PEZ run, restart i against scene i), then reports how many of each scene's color and shape words
the prompts contain, and how the independently trained `shapes-reference` tower scores them.
The command behind benchmarks/results/shapes_inversion.json:

    nice -n 5 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/shapes_inversion.py \\
        --scenes 20 --steps 300 --out benchmarks/results/shapes_inversion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from hardprompt import invert_each, load_text_encoder
from hardprompt.apps.common import build_vocabulary
from hardprompt.io import write_json
from hardprompt.optim.pez import PEZConfig, random_allowed_ids
from hardprompt.shapes import caption, render
from hardprompt.shapes.evaluation import evaluation_scenes, word_recovery


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="PEZ seed (the scenes are fixed)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    model = load_text_encoder("shapes", device="cpu")
    reference = load_text_encoder("shapes-reference", device="cpu")
    scenes = evaluation_scenes(args.scenes)
    images = [render(scene) for scene in scenes]
    features = model.encode_images(images)
    reference_features = reference.encode_images(images)
    vocab = build_vocabulary(model)
    config = PEZConfig(prompt_len=args.prompt_len, steps=args.steps, lr=args.lr, seed=args.seed, progress=False)

    start = time.perf_counter()
    found = list(invert_each(images, model=model, config=config, images_per_batch=len(images)))
    seconds = time.perf_counter() - start

    prompts = [item.prompt for item in found]
    recovery = [word_recovery(prompt, scene) for prompt, scene in zip(prompts, scenes, strict=True)]
    random_ids = random_allowed_ids(vocab.allowed_ids, (len(scenes), args.prompt_len), seed=12345)
    random_prompts = [vocab.decode(row) for row in random_ids.tolist()]
    captions = [caption(scene) for scene in scenes]
    with torch.no_grad():
        text = {
            name: reference.encode_texts(texts)
            for name, texts in (("prompt", prompts), ("caption", captions), ("random", random_prompts))
        }
        reference_cos = {name: (feats * reference_features).sum(dim=1).tolist() for name, feats in text.items()}
        # Paper §4.4: prompt(A) + prompt(B) against A and against B, versus the other scene's prompt alone.
        pairs = [(i, i + 1) for i in range(0, len(scenes) - 1, 2)]
        joined = model.encode_texts([f"{prompts[a]} {prompts[b]}" for a, b in pairs])
        alone = text["prompt"]
        concat_wins = []
        for row, (a, b) in enumerate(pairs):
            for target, other in ((a, b), (b, a)):
                concat_wins.append(float(joined[row] @ features[target] > alone[other] @ features[target]))
    record = {
        "benchmark": "shapes_inversion",
        "model": "shapes",
        "reference_scorer": "shapes-reference",
        "scenes": len(scenes),
        "prompt_len": args.prompt_len,
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "mean_word_recovery": mean(recovery),
        "scenes_at_least_60pct": sum(r >= 0.6 for r in recovery),
        "mean_model_similarity": mean([item.score for item in found]),
        "mean_reference_similarity": mean(reference_cos["prompt"]),
        "mean_reference_similarity_true_caption": mean(reference_cos["caption"]),
        "mean_reference_similarity_random_prompt": mean(reference_cos["random"]),
        "concatenation_beats_other_prompt": mean(concat_wins),
        "seconds": round(seconds, 1),
        "per_scene": [
            {"caption": c, "prompt": p, "recovery": round(r, 3), "reference_similarity": round(s, 4)}
            for c, p, r, s in zip(captions, prompts, recovery, reference_cos["prompt"], strict=True)
        ],
    }
    if args.out:
        write_json(args.out, record)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
