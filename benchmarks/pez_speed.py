"""Seconds per PEZ step: hardprompt's loop against the reference implementation's loop.

The reference loop (YuxinWenRick/hard-prompts-made-easy, `optimize_prompt_loop`) pads every prompt
to CLIP's 77 positions, re-normalizes the whole embedding table at every projection, and runs a
second, no-grad forward pass to score the projected prompt. Ours encodes prompt_len + 2 positions,
normalizes the allowed table once, and scores from the loss's own forward pass. Both start from
the same prompt with the same AdamW settings, so their best scores should agree.

By default the CLIP text tower is built from the architecture's config with random weights (speed
depends on the architecture, not the weights) and the real CLIP BPE vocabulary from tests/assets;
`--model` takes a real CLIP (hub id or local directory) instead. Prints one JSON object.

    python benchmarks/pez_speed.py --arch vit-b-32 --prompt-len 16 --restarts 1 --steps 40
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
import torch.nn.functional as F

from hardprompt import PEZConfig, load_text_encoder
from hardprompt.apps.common import build_vocabulary
from hardprompt.models.clip import CLIPEncoder
from hardprompt.models.frozen import PackedLinear
from hardprompt.models.loading import resolve_device
from hardprompt.objectives import FeatureSimilarity
from hardprompt.optim.pez import ProjectedGradientStep, random_allowed_ids

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
ARCHITECTURES = {
    "vit-b-32": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8, proj=512),
    "vit-l-14": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, proj=768),
    "vit-h-14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, proj=1024),
}


def random_clip(arch: str, folder: Path, device: torch.device) -> CLIPEncoder:
    """A CLIP text tower of the given architecture with random weights and the real CLIP vocabulary."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import write_clip_tokenizer_files
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    write_clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    settings = dict(ARCHITECTURES[arch])
    projection = settings.pop("proj")
    text = dict(settings, vocab_size=len(tokenizer), max_position_embeddings=77, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection))
    return CLIPEncoder(model, tokenizer, None, name=f"random-{arch}", device=device)


def plain_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with hardprompt's CPU `PackedLinear` layers turned back into plain `nn.Linear` (the reference's)."""
    for name, child in model.named_children():
        if isinstance(child, PackedLinear):
            plain = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(model, name, plain)
        else:
            plain_linear_layers(child)
    return model


class ReferenceLoop:
    """The reference repository's PEZ step, reproduced faithfully for timing."""

    def __init__(self, encoder: CLIPEncoder, targets: torch.Tensor, init_ids: torch.Tensor, lr: float, wd: float):
        self.encoder = encoder
        self.targets = targets
        self.table = encoder.embedding_table.detach()
        batch, length = init_ids.shape
        # dummy ids: BOS, -1 placeholders for the prompt, EOS, then padding to 77 (the reference's layout)
        dummy = torch.full((batch, encoder.context_len), encoder.eos_id, dtype=torch.long, device=encoder.device)
        dummy[:, 0] = encoder.bos_id
        dummy[:, 1 : length + 1] = -1
        self.dummy_ids = dummy
        self.dummy_embeds = self.table[dummy.clamp(min=0)]
        self.eos_position = torch.full((batch,), length + 1, device=encoder.device)
        self.prompt = self.table[init_ids].float().requires_grad_(True)
        self.optimizer = torch.optim.AdamW([self.prompt], lr=lr, weight_decay=wd)
        self.best = -float("inf")

    def _features(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        padded = self.dummy_embeds.clone()
        padded[self.dummy_ids == -1] = prompt_embeds.reshape(-1, prompt_embeds.shape[-1]).to(padded.dtype)
        text_model = self.encoder.model.text_model
        hidden = text_model.embeddings(inputs_embeds=padded)
        mask = torch.full((77, 77), torch.finfo(hidden.dtype).min, device=hidden.device).triu(1)[None, None]
        hidden = text_model.final_layer_norm(text_model.encoder(inputs_embeds=hidden, attention_mask=mask)[0])
        pooled = hidden[torch.arange(len(hidden)), self.eos_position]
        return F.normalize(self.encoder.model.text_projection(pooled).float(), dim=-1)

    def step(self) -> None:
        with torch.no_grad():  # nn_project: the whole table normalized at every call
            unit_table = F.normalize(self.table, dim=-1)
            ids = (F.normalize(self.prompt.to(unit_table.dtype), dim=-1) @ unit_table.T).argmax(-1)
            projected = self.table[ids]
            score = (self._features(projected) @ self.targets.T).mean(1).max().item()  # the second forward
        hard = projected.detach().clone().requires_grad_(True)
        loss = 1 - (self._features(hard) @ self.targets.T).mean()
        (gradient,) = torch.autograd.grad(loss, [hard])
        self.prompt.grad = gradient.float()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.best = max(self.best, score)


class OurLoop:
    """hardprompt's PEZ step (`hardprompt.optim.pez.ProjectedGradientStep`, the body of `pez.run`), one at a time."""

    def __init__(self, objective: FeatureSimilarity, vocab, config: PEZConfig) -> None:
        self.pez_step = ProjectedGradientStep(objective, vocab, config)
        self.best = -float("inf")

    def step(self) -> None:
        _, evaluation = self.pez_step()
        self.best = max(self.best, evaluation.score.max().item())  # .item() synchronizes a GPU


def seconds_per_step(loops: dict[str, object], steps: int, block: int = 5) -> dict[str, float]:
    """Time the loops in interleaved blocks, so that load on the machine hits both alike."""
    spent = dict.fromkeys(loops, 0.0)
    for loop in loops.values():  # warm-up
        loop.step()
    for _ in range(0, steps, block):
        for name, loop in loops.items():
            start = time.perf_counter()
            for _ in range(block):
                loop.step()
            spent[name] += time.perf_counter() - start
    return {name: total / (steps // block * block) for name, total in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vit-b-32")
    parser.add_argument("--model", default=None, help="a real CLIP (hub id or directory) instead of --arch")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="hardprompt's model precision")
    parser.add_argument("--reference-dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        device = resolve_device(args.device)
        encoder = load_text_encoder(args.model, device) if args.model else random_clip(args.arch, Path(folder), device)
        vocab = build_vocabulary(encoder)
        targets = encoder.encode_texts(["a watercolor painting of a lighthouse on a cliff at sunset"])
        reference_encoder = copy.copy(encoder)
        reference_encoder.model = plain_linear_layers(copy.deepcopy(encoder.model)).to(DTYPES[args.reference_dtype])
        encoder.model.to(DTYPES[args.dtype])  # parameters convert in place: the encoder's table follows
        config = PEZConfig(prompt_len=args.prompt_len, restarts=args.restarts)
        init_ids = random_allowed_ids(vocab.allowed_ids, (args.restarts, args.prompt_len), seed=0).to(device)
        loops = {
            "hardprompt": OurLoop(FeatureSimilarity(encoder, targets), vocab, config),
            "reference": ReferenceLoop(reference_encoder, targets, init_ids, config.lr, 0.1),
        }
        timing = seconds_per_step(loops, args.steps)
    print(
        json.dumps(
            {
                "model": args.model or f"random {args.arch} text tower",
                "prompt_len": args.prompt_len,
                "restarts": args.restarts,
                "steps": args.steps,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "threads": torch.get_num_threads(),
                "dtype": {"hardprompt": args.dtype, "reference": args.reference_dtype},
                "seconds_per_step": {k: round(v, 5) for k, v in timing.items()},
                "speedup": round(timing["reference"] / timing["hardprompt"], 2),
                "best_score": {name: round(loop.best, 5) for name, loop in loops.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
