"""Images per hour of one-prompt-per-image inversion: batched PEZ at B images per pass against the reference loop.

hardprompt's side is the product path of `hardprompt invert --each` after the images are encoded:
`PerTargetSimilarity` over B targets, PEZ on all of them at once (`optim.registry.run_each_problem`),
each image's round-trip choice included. The reference is the paper repository's loop
(benchmarks/pez_speed.py's `ReferenceLoop`), run image by image: its time per image is `--steps`
times its time per step. Both use a CLIP text tower of the chosen architecture with random weights
and the real CLIP vocabulary, 16-token prompts, and the same targets (text features of distinct
captions stand in for image features: the vision tower is not timed). Measurements interleave
rounds over all settings, so load on the machine hits them alike. On a GPU it also times one
image's PEZ step eager and captured in a CUDA graph (`--cuda-graph` captures the batched runs too).
Prints one JSON object.

    python benchmarks/invert_throughput.py --arch vit-b-32 --steps 20 --batches 1,4,16,64 --rounds 2
    python benchmarks/invert_throughput.py --arch vit-l-14 --device cuda --steps 100 --cuda-graph
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
from hardprompt.objectives import FeatureSimilarity, PerTargetSimilarity
from hardprompt.optim.pez import ProjectedGradientStep, random_allowed_ids
from hardprompt.optim.registry import run_each_problem

SUBJECTS = ["lighthouse", "fox", "castle", "teapot", "violin", "glacier", "robot", "orchid"]
PLACES = ["on a cliff", "in the snow", "at night", "under water", "in a desert", "on the moon", "in a forest", "in fog"]


def captions(count: int) -> list[str]:
    """`count` distinct captions (the stand-in targets)."""
    return [f"a photo of a {SUBJECTS[i % 8]} {PLACES[(i // 8) % 8]}, number {i}" for i in range(count)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def single_image_steps(encoder, vocab, target: torch.Tensor, reference: ReferenceLoop, args) -> dict[str, float]:
    """Seconds per PEZ step for one image: eager, CUDA graph, and the reference loop, interleaved."""
    steps = {
        name: ProjectedGradientStep(
            FeatureSimilarity(encoder, target), vocab, PEZConfig(prompt_len=args.prompt_len, cuda_graph=graph)
        )
        for name, graph in (("eager", False), ("cuda_graph", True))
    }
    for step in steps.values():
        for _ in range(ProjectedGradientStep.WARMUP_STEPS + 2):
            step()
    calls = {**steps, "reference": reference.step}
    spent = dict.fromkeys(calls, 0.0)
    block = 10
    for _ in range(max(1, args.graph_steps // block)):
        for name, call in calls.items():
            synchronize(encoder.device)
            start = time.perf_counter()
            for _ in range(block):
                call()
            synchronize(encoder.device)
            spent[name] += time.perf_counter() - start
    per_step = {name: total / (max(1, args.graph_steps // block) * block) for name, total in spent.items()}
    result = {name: round(value, 6) for name, value in per_step.items()}
    result["graph_vs_eager"] = round(per_step["eager"] / per_step["cuda_graph"], 2)
    result["graph_vs_reference"] = round(per_step["reference"] / per_step["cuda_graph"], 2)
    return {**result, "captured": steps["cuda_graph"].graphed}


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
    parser.add_argument("--cuda-graph", action="store_true", help="capture the batched runs' steps (GPU)")
    parser.add_argument("--graph-steps", type=int, default=100, help="GPU: steps timed per single-image setting")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        encoder = random_clip(args.arch, Path(folder), device)
        vocab = build_vocabulary(encoder)
        targets = encoder.encode_texts(captions(max(batches)))
        config = PEZConfig(prompt_len=args.prompt_len, steps=args.steps, progress=False, cuda_graph=args.cuda_graph)
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
        on_gpu = device.type == "cuda"
        step_seconds = single_image_steps(encoder, vocab, targets[:1], reference, args) if on_gpu else None
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
                "cuda_graph_batches": args.cuda_graph,
                "single_image_seconds_per_step": step_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
