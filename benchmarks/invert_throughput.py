"""Images per hour of one-prompt-per-image inversion: batched PEZ at B images per pass against the reference loop.

hardprompt's side is the product path of `hardprompt invert --each` after the images are encoded:
`PerTargetSimilarity` over B targets, PEZ on all of them at once (`optim.registry.run_each_problem`),
each image's round-trip choice included. The reference is the paper repository's loop
(benchmarks/pez_speed.py's `ReferenceLoop`), run image by image: its time per image is `--steps`
times its time per step. Both use a CLIP text tower of the chosen architecture with random weights
and the real CLIP vocabulary, 16-token prompts, and the same targets (text features of distinct
captions stand in for image features: the vision tower is not timed). Measurements interleave
rounds over all settings, so load on the machine hits them alike. Prints one JSON object.

    python benchmarks/invert_throughput.py --arch vit-b-32 --steps 20 --batches 1,4,16,64 --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pez_speed import ARCHITECTURES, ReferenceLoop, plain_linear_layers, random_clip

from hardprompt import PEZConfig
from hardprompt.apps.common import build_vocabulary
from hardprompt.models.loading import resolve_device
from hardprompt.objectives import PerTargetSimilarity
from hardprompt.optim.pez import random_allowed_ids
from hardprompt.optim.registry import run_each_problem

SUBJECTS = ["lighthouse", "fox", "castle", "teapot", "violin", "glacier", "robot", "orchid"]
PLACES = ["on a cliff", "in the snow", "at night", "under water", "in a desert", "on the moon", "in a forest", "in fog"]


def captions(count: int) -> list[str]:
    """`count` distinct captions (the stand-in targets)."""
    return [f"a photo of a {SUBJECTS[i % 8]} {PLACES[(i // 8) % 8]}, number {i}" for i in range(count)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vit-b-32")
    parser.add_argument("--steps", type=int, default=20, help="PEZ steps per image")
    parser.add_argument("--batches", default="1,4,16,64", help="images per forward pass to time")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved measurement rounds")
    parser.add_argument("--reference-steps", type=int, default=10, help="reference steps timed per round")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        encoder = random_clip(args.arch, Path(folder), device)
        vocab = build_vocabulary(encoder)
        targets = encoder.encode_texts(captions(max(batches)))
        config = PEZConfig(prompt_len=args.prompt_len, steps=args.steps, progress=False)
        reference_encoder = copy.copy(encoder)
        reference_encoder.model = plain_linear_layers(copy.deepcopy(encoder.model))
        init_ids = random_allowed_ids(vocab.allowed_ids, (1, args.prompt_len), seed=0).to(device)
        reference = ReferenceLoop(reference_encoder, targets[:1], init_ids, config.lr, config.weight_decay)

        def batch_seconds(size: int) -> float:
            objective = PerTargetSimilarity(encoder, targets[:size])
            synchronize(device)
            start = time.perf_counter()
            run_each_problem(objective, vocab, config, seeds=list(range(size)))
            synchronize(device)
            return time.perf_counter() - start

        def reference_seconds_per_step() -> float:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(args.reference_steps):
                reference.step()
            synchronize(device)
            return (time.perf_counter() - start) / args.reference_steps

        batch_seconds(min(batches))  # warm-up
        reference.step()
        per_image: dict[str, list[float]] = {f"B={b}": [] for b in batches}
        per_image["reference"] = []
        for _ in range(args.rounds):
            for size in batches:
                per_image[f"B={size}"].append(batch_seconds(size) / size)
            per_image["reference"].append(reference_seconds_per_step() * args.steps)
    seconds = {name: sum(values) / len(values) for name, values in per_image.items()}
    per_hour = {name: 3600 / value for name, value in seconds.items()}
    print(
        json.dumps(
            {
                "benchmark": "invert_throughput",
                "model": f"random {args.arch} text tower, real CLIP vocabulary",
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "threads": torch.get_num_threads(),
                "prompt_len": args.prompt_len,
                "steps_per_image": args.steps,
                "rounds": args.rounds,
                "seconds_per_image": {k: round(v, 4) for k, v in seconds.items()},
                "images_per_hour": {k: round(v, 1) for k, v in per_hour.items()},
                "vs_reference": {k: round(v / per_hour["reference"], 2) for k, v in per_hour.items()},
                "vs_B=1": {k: round(v / per_hour[f"B={batches[0]}"], 2) for k, v in per_hour.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
