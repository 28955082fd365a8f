"""Train a shapes image tower against the frozen MiniLM text tower (LiT: locked text, CLIP loss).

    python -m hardprompt.shapes.train --arch main --seed 0 --out src/hardprompt/assets/shapes/main.safetensors

Deterministic for a given seed (on CPU). Each caption is embedded once by MiniLM before training;
the training loop only runs the image tower.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..cli.common import nonnegative_float, positive_float
from ..errors import HardpromptError
from ..models import load_text_encoder
from .render import caption, random_scene, render
from .towers import ARCHITECTURES, uint8_to_pixels

HELD_OUT_SEED = 999_999
"""Seed of the held-out scenes used for the retrieval accuracy (never trained on)."""


def make_dataset(count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """`count` random scenes: images as uint8 (count, 64, 64, 3) and their captions."""
    rng = random.Random(seed)
    scenes = [random_scene(rng) for _ in range(count)]
    images = np.stack([np.asarray(render(scene)) for scene in scenes])
    return torch.from_numpy(images), [caption(scene) for scene in scenes]


@torch.no_grad()
def embed_captions(captions: list[str], batch: int = 256) -> torch.Tensor:
    """MiniLM features (n, 384) of the captions, computed once (duplicates embedded once)."""
    encoder = load_text_encoder("minilm", device="cpu")
    unique = sorted(set(captions))
    features = torch.cat([encoder.encode_texts(unique[i : i + batch]) for i in range(0, len(unique), batch)])
    index = {text: row for row, text in enumerate(unique)}
    return features[torch.tensor([index[text] for text in captions])]


@torch.no_grad()
def image_features(tower: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Unit features of uint8 images with the tower in eval mode."""
    tower.eval()
    return torch.cat([tower(uint8_to_pixels(images[i : i + batch])) for i in range(0, len(images), batch)])


def retrieval_accuracy(image_feats: torch.Tensor, text_feats: torch.Tensor, k: int = 1) -> float:
    """Fraction of images whose own caption is among the `k` most similar captions of the set."""
    similarity = image_feats @ text_feats.T
    own = similarity.diagonal().unsqueeze(1)
    rank = (similarity > own).sum(dim=1)
    return float((rank < k).float().mean())


def train(
    arch: str, seed: int, scenes: int, steps: int, batch_size: int, lr: float, held_out: int, align_weight: float
) -> dict:
    """Train one tower (CLIP loss + `align_weight` · (1 − cos to own caption)); returns weights and metrics."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    images, captions = make_dataset(scenes, seed)
    test_images, test_captions = make_dataset(held_out, HELD_OUT_SEED)
    text = embed_captions(captions + test_captions)
    train_text, test_text = text[:scenes], text[scenes:]
    print(f"data ready in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    tower = ARCHITECTURES[arch]()
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    optimizer = torch.optim.AdamW([*tower.parameters(), logit_scale], lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size)
    tower.train()
    for step in range(steps):
        chosen = torch.randint(scenes, (batch_size,), generator=generator)
        pixels = uint8_to_pixels(images[chosen])
        if torch.rand((), generator=generator) < 0.5:
            pixels = pixels + 0.03 * torch.randn(pixels.shape, generator=generator)
        features, targets = tower(pixels), train_text[chosen]
        logits = logit_scale.exp().clamp(max=100) * features @ targets.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        loss = loss + align_weight * (1 - (features * targets).sum(dim=1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - start
            print(
                f"step {step} loss {loss.item():.3f} scale {logit_scale.exp().item():.1f} {elapsed:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    test_feats = image_features(tower, test_images)
    metrics = {
        "arch": arch,
        "seed": seed,
        "training_scenes": scenes,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "align_weight": align_weight,
        "held_out_scenes": held_out,
        "held_out_seed": HELD_OUT_SEED,
        "retrieval_top1": retrieval_accuracy(test_feats, test_text, 1),
        "retrieval_top5": retrieval_accuracy(test_feats, test_text, 5),
        "mean_cos_own_caption": float((test_feats * test_text).sum(dim=1).mean()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return {"state": tower.state_dict(), "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardprompt.shapes.train", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="main")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training scenes and the weights")
    parser.add_argument("--scenes", type=int, default=12000, help="training scenes (12000)")
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps (1200)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument(
        "--align-weight", type=nonnegative_float, default=1.0, help="weight of 1 − cos(image, own caption) (1.0)"
    )
    parser.add_argument("--held-out", type=int, default=1000, help="held-out scenes for the retrieval accuracy")
    parser.add_argument("--out", required=True, help="where to write the weights (.safetensors)")
    args = parser.parse_args(argv)
    try:
        if args.steps < 1 or args.scenes < args.batch_size or args.held_out < 5:
            raise HardpromptError("need steps >= 1, scenes >= batch size and at least 5 held-out scenes")
        trained = train(
            args.arch, args.seed, args.scenes, args.steps, args.batch_size, args.lr, args.held_out, args.align_weight
        )
    except HardpromptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no weights written", file=sys.stderr)
        return 130
    state = {name: tensor.detach().to(torch.float16).contiguous() for name, tensor in trained["state"].items()}
    state = {name: tensor for name, tensor in state.items() if not name.endswith("num_batches_tracked")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = trained["metrics"]
    save_file(state, str(out), metadata={"arch": args.arch, "metrics": json.dumps(metrics)})
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
