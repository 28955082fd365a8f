"""`hardprompt generate "PROMPT"`: prompt → images (Stable Diffusion, or the shapes world), and a contact sheet."""

from __future__ import annotations

import argparse
import sys

from ..apps.generators import BUILT_IN_GENERATORS, load_generator
from ..generation import DEFAULT_PIPELINE, GenerationConfig, compose_prompt, contact_sheet
from ..io import atomic_save_image, load_image, write_json
from .common import finite_float, output_folder


def add_generation_options(parser: argparse.ArgumentParser, steps_flag: str = "--steps") -> None:
    """Options of GenerationConfig; `steps_flag` names the denoising-steps option."""
    defaults = GenerationConfig()
    group = parser.add_argument_group("generation")
    group.add_argument("--n", type=int, default=defaults.n, help=f"images per prompt ({defaults.n})")
    group.add_argument(
        steps_flag, dest="gen_steps", type=int, default=defaults.steps, help=f"denoising steps ({defaults.steps})"
    )
    group.add_argument("--guidance", type=finite_float, default=defaults.guidance, help="classifier-free guidance (9)")
    group.add_argument(
        "--gen-seed" if steps_flag != "--steps" else "--seed",
        dest="gen_seed",
        type=int,
        default=defaults.seed,
        help="image i uses seed + i (0)",
    )
    group.add_argument("--size", type=int, default=None, help="height and width in pixels (pipeline default)")
    group.add_argument("--negative-prompt", default=None, help="what the images should not show")
    group.add_argument("--gen-batch-size", type=int, default=defaults.batch_size, help="images per pipeline call")


def quiet_diffusers() -> None:
    """Silence diffusers' warnings and loading bars (the denoising bar is set per pipeline)."""
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return  # ImageGenerator tells how to install it
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()


def generation_config(args: argparse.Namespace) -> GenerationConfig:
    config = GenerationConfig(
        n=args.n,
        steps=args.gen_steps,
        guidance=args.guidance,
        seed=args.gen_seed,
        size=args.size,
        negative_prompt=args.negative_prompt,
        batch_size=args.gen_batch_size,
    )
    config.validate()
    return config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt (diffusers, or the shapes world)")
    parser.add_argument("prompt", help="the prompt, e.g. one learned by `hardprompt invert`")
    parser.add_argument(
        "--model",
        default=DEFAULT_PIPELINE,
        help=f"diffusers pipeline (hub id or local directory), or shapes for the shapes world ({DEFAULT_PIPELINE})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto; fp16 on GPU)")
    parser.add_argument("--template", default=None, help='put the prompt into a template: "a tiger in the style of {}"')
    parser.add_argument("--concat", default=None, metavar="PROMPT2", help="append a second prompt")
    parser.add_argument("--target", default=None, help="target image shown first on the contact sheet")
    parser.add_argument("--out", type=output_folder, default="generated", help="output folder (default: generated)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_generation_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    text = compose_prompt(args.prompt, args.template, args.concat)
    config = generation_config(args)
    target = load_image(args.target) if args.target else None
    if args.model not in BUILT_IN_GENERATORS:
        quiet_diffusers()
    generator = load_generator(args.model, device=args.device, progress=not args.quiet)
    images = generator.generate(text, config)
    files = []
    for index, image in enumerate(images):
        path = f"{args.out}/image-{index}.png"
        atomic_save_image(path, image)
        files.append(path)
    sheet = f"{args.out}/sheet.png"
    atomic_save_image(sheet, contact_sheet(images, text, target))
    record = {
        "prompt": args.prompt,
        "text": text,
        "template": args.template,
        "concat": args.concat,
        "model": args.model,
        "device": str(generator.device),
        "target": args.target,
        "config": config.to_dict(),
        "images": files,
        "sheet": sheet,
    }
    write_json(f"{args.out}/generation.json", record)
    print(sheet, flush=True)
    if not args.quiet:
        print(f"{len(images)} images for {text!r} in {args.out}", file=sys.stderr)
    return 0
