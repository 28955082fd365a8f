"""Peak memory of `invert`: hardprompt against the reference implementation's loop.

On the CPU the measure is the peak RSS; with `--device cuda` also `torch.cuda.max_memory_allocated`.

Cases: the paper's optimizer, CLIP ViT-H/14, and SDXL's pair of text encoders, CLIP ViT-L/14 with
OpenCLIP ViT-bigG/14. Each model is built from its architecture's config with random weights
(memory depends on the architecture, not the weights), the real CLIP vocabulary and image
processor, and saved in Hugging Face format, so that both sides load it as a user's model. Every
run is a fresh process inverting one 224×224 image (prompt length 16, a few PEZ steps) and reports
its own peak resident set size (`ru_maxrss`) and the RSS after importing torch and transformers.

- hardprompt: `hardprompt.invert(image, model=DIR or [DIR_L, DIR_G])`. A named model is read one
  tower at a time: the image tower alone encodes the image and is freed, then the text tower alone
  loads. The image tower is read block by block from the safetensors as it runs
  (hardprompt.models.streaming). On the CPU, float32 text towers have their linear layers
  pre-packed for oneDNN (two more copies of those weights, for speed); `--low-memory` runs
  (`hardprompt.low_memory()`) leave them unpacked.
- reference: the reference loop of benchmarks/pez_speed.py (77 padded positions, the table
  re-normalized every step, a second forward to score) on the whole CLIPModel in float32, its image
  tower kept, as the reference implementation holds it. For SDXL's pair the reference has no joint
  loop; its figure is the loop on ViT-bigG/14 alone, a lower bound for holding both.

    python benchmarks/memory.py --steps 3
    python benchmarks/memory.py --cases vit-h-14 --workdir /tmp/clips --keep   # reuse the saved models
    python benchmarks/memory.py --device cuda    # reference float32 against hardprompt float32 and float16
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CLIP_BPE = ROOT / "tests" / "assets" / "bpe_simple_vocab_16e6.txt.gz"
#: Hugging Face CLIPConfig settings of the architectures (text tower, image tower, projection).
ARCHITECTURES = {
    "vit-h-14": dict(text=(1024, 4096, 24, 16), vision=(1280, 5120, 32, 16), projection=1024),
    "vit-l-14": dict(text=(768, 3072, 12, 12), vision=(1024, 4096, 24, 16), projection=768),
    "vit-bigg-14": dict(text=(1280, 5120, 32, 20), vision=(1664, 8192, 48, 16), projection=1280),
}
CASES = {"vit-h-14": ["vit-h-14"], "sdxl": ["vit-l-14", "vit-bigg-14"]}
RUNS = {  # name -> (side, dtype, packing); packing applies to float32 on the CPU only
    "reference float32": ("reference", "float32", False),
    "hardprompt float32": ("hardprompt", "float32", True),
    "hardprompt float32 --low-memory": ("hardprompt", "float32", False),
    "hardprompt bfloat16": ("hardprompt", "bfloat16", False),
    "hardprompt float16": ("hardprompt", "float16", False),
}
DEFAULT_RUNS = {
    "cpu": [
        "reference float32",
        "hardprompt float32",
        "hardprompt float32 --low-memory",
        "hardprompt bfloat16",
        "hardprompt float16",
    ],
    "cuda": ["reference float32", "hardprompt float32", "hardprompt float16"],
}


def build(arch: str, folder: Path) -> None:
    """Save a random CLIPModel of `arch` (weights drawn from N(0, 0.02), layer norms at 1) to `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel
    from transformers.initialization import no_init_weights

    from hardprompt.models.clip_bpe import clip_tokenizer

    tokenizer = clip_tokenizer(CLIP_BPE)
    settings = ARCHITECTURES[arch]

    def tower(hidden: int, intermediate: int, layers: int, heads: int) -> dict:
        return dict(
            hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers, num_attention_heads=heads
        )

    text = dict(tower(*settings["text"]), vocab_size=len(tokenizer), max_position_embeddings=77)
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=0)
    vision = dict(tower(*settings["vision"]), image_size=224, patch_size=14)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=settings["projection"])
    generator = torch.Generator().manual_seed(0)
    with no_init_weights():
        model = CLIPModel(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)


def rss_kib() -> int:
    """The current resident set size in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(side: str, folders: list[str], dtype: str, packing: bool, steps: int, device: str) -> dict:
    """One run in this process: the peak RSS (and GPU memory) in MiB of `side` inverting one image, and its score."""
    import transformers
    from PIL import Image

    import hardprompt

    transformers.utils.logging.set_verbosity_error()
    imported = rss_kib()
    image = Image.effect_noise((224, 224), 64).convert("RGB")
    start = time.perf_counter()
    if side == "hardprompt":
        config = hardprompt.PEZConfig(prompt_len=16, steps=steps, progress=False)
        with hardprompt.low_memory(not packing):
            result = hardprompt.invert([image], model=folders, config=config, device=device, dtype=dtype)
        score = result.score
    else:
        with hardprompt.low_memory(not packing):  # the reference implementation packs nothing
            score = reference_run(folders[-1], image, steps, device)
    gpu = {"peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)} if device == "cuda" else {}
    return {
        **gpu,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_imports_mib": round(imported / 1024),
        "seconds": round(time.perf_counter() - start, 1),
        "score": round(float(score), 5),
    }


def reference_run(folder: str, image, steps: int, device: str) -> float:
    """The reference loop (benchmarks/pez_speed.py) on the whole float32 CLIPModel at `folder`."""
    from pez_speed import ReferenceLoop

    from hardprompt import load_text_encoder
    from hardprompt.apps.common import build_vocabulary
    from hardprompt.optim.pez import random_allowed_ids

    encoder = load_text_encoder(folder, device=device, dtype="float32")
    targets = encoder.encode_images([image])
    init_ids = random_allowed_ids(build_vocabulary(encoder).allowed_ids, (1, 16), seed=0).to(encoder.device)
    loop = ReferenceLoop(encoder, targets, init_ids, lr=0.1, wd=0.1)
    for _ in range(steps):
        loop.step()
    return loop.best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--runs", default=None, help="comma-separated, of: " + "; ".join(RUNS) + " (a set per device)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", choices=sorted(DEFAULT_RUNS), default="cpu")
    parser.add_argument("--workdir", default=None, help="where the random models are saved (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the saved models in --workdir")
    parser.add_argument("--build", default=None, help=argparse.SUPPRESS)  # internal: one child per model
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one child per run
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.build:
        build(args.build, Path(args.workdir))
        return
    if args.measure:
        side, dtype, packing = RUNS[args.measure]
        print(json.dumps(measure(side, args.workdir.split(","), dtype, packing, args.steps, args.device)))
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hardprompt-memory-"))
    results = []
    for case in args.cases.split(","):
        folders = []
        for arch in CASES[case]:
            folder = workdir / arch
            if not (folder / "config.json").is_file():
                subprocess.run([sys.executable, __file__, "--build", arch, "--workdir", str(folder)], check=True)
            folders.append(str(folder))
        for run in args.runs.split(",") if args.runs else DEFAULT_RUNS[args.device]:
            command = [
                sys.executable,
                __file__,
                "--measure",
                run,
                "--workdir",
                ",".join(folders),
                "--device",
                args.device,
            ]
            output = subprocess.run([*command, "--steps", str(args.steps)], check=True, capture_output=True, text=True)
            results.append({"case": case, "run": run, **json.loads(output.stdout.strip().splitlines()[-1])})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    if not args.keep:
        shutil.rmtree(workdir)
    print(json.dumps({"steps": args.steps, "threads": 1, "device": args.device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
