"""`invert --each` here against 1, 2, ... Ray workers on one machine: startup, images per hour, same prompts.

A random CLIP with the text tower of `--arch` (real 49,408-token vocabulary) and a tiny vision tower
is saved to a temporary folder, which every worker loads (as a cluster's workers would load a model
every node can reach). `--images` distinct images are inverted `--images-per-batch` at a time:
locally (`EachInversion` in this process), then through `ray_inversion` with each worker count
of `--workers` on one local Ray (`ray.init(num_cpus=...)`), each worker holding 1 CPU (1 thread).

For each setting: the seconds until the first worker is ready (Ray worker process, imports, model
load; 0 locally: the model is loaded before timing), the seconds from then to the last result,
images per hour over that span, and whether every image's prompt equals the local run's.

    OMP_NUM_THREADS=1 python benchmarks/ray_scaling.py --arch vit-b-32 --images 16 --steps 20 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
from PIL import Image

from hardprompt import PEZConfig
from hardprompt.apps.invert_each import EachInversion
from hardprompt.distributed.invert_each import ray_inversion

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pez_speed import ARCHITECTURES
from tiny_models import write_clip_tokenizer_files


def save_clip(arch: str, folder: Path) -> Path:
    """A random CLIP (text tower of `arch`, tiny vision tower) with tokenizer and image processor, saved."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    write_clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    settings = dict(ARCHITECTURES[arch])
    projection = settings.pop("proj")
    text = dict(settings, vocab_size=len(tokenizer), max_position_embeddings=77, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def write_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        image = Image.new("RGB", (40, 40), ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256))
        image.paste(((200 + 17 * i) % 256, 20, 255 - 9 * i % 256), (4 + i % 20, 6, 20 + i % 20, 30))
        paths.append(folder / f"img{i:03d}.png")
        image.save(paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vit-b-32")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images-per-batch", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = PEZConfig(prompt_len=16, steps=args.steps, progress=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = str(save_clip(args.arch, Path(tmp) / "clip"))
        (Path(tmp) / "images").mkdir()
        images = write_images(Path(tmp) / "images", args.images)

        inversion = EachInversion(model, config, images_per_batch=args.images_per_batch, device="cpu")
        start = time.perf_counter()
        local = {r.config["image"]: r.prompt for r in inversion.run(inversion.plan(images).tasks)}
        rows.append({"setting": "local", "startup_s": 0.0, "run_s": time.perf_counter() - start, "same": True})

        ray.init(num_cpus=args.cpus, logging_level="WARNING")
        for workers in map(int, args.workers.split(",")):
            begin = time.perf_counter()
            with ray_inversion(
                model, config, cluster={"workers": workers}, images_per_batch=args.images_per_batch, device="cpu"
            ) as each:
                tasks = each.plan(images).tasks
                each.pool.first_info()
                ready = time.perf_counter()
                prompts = {r.config["image"]: r.prompt for r in each.run(tasks)}
                end = time.perf_counter()
            rows.append(
                {
                    "setting": f"ray, {workers} worker{'s' if workers > 1 else ''}",
                    "startup_s": ready - begin,
                    "run_s": end - ready,
                    "same": prompts == local,
                }
            )
        ray.shutdown()
    print("| setting | first worker ready (s) | run (s) | images per hour | prompts = local |")
    print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        rate = args.images * 3600 / row["run_s"]
        print(f"| {row['setting']} | {row['startup_s']:.1f} | {row['run_s']:.1f} | {rate:,.0f} | {row['same']} |")
    print(json.dumps({"args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
