"""`hardprompt distill "LONG PROMPT"` (or --file): long prompt → short prompt."""

from __future__ import annotations

import argparse

from ..apps.common import is_image_input, load_encoders
from ..apps.distill import DEFAULT_TEXT_MODEL, distill
from ..errors import HardpromptError
from ..io import read_lines, write_jsonl
from .common import (
    add_dtype_option,
    add_model_options,
    add_negative_options,
    add_optimizer_options,
    add_output_options,
    add_vocabulary_options,
    chosen_models,
    optimizer_config,
    report,
    save,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("distill", help="distill a long prompt into a few tokens")
    parser.add_argument("text", nargs="?", default=None, help="the prompt to distill")
    parser.add_argument("--file", default=None, help="prompts to distill, one per line (results as JSONL)")
    add_model_options(parser, DEFAULT_TEXT_MODEL, several=True)
    add_dtype_option(parser)
    add_optimizer_options(parser, prompt_len=8)
    parser.add_argument("--ratio", type=float, default=None, help="prompt length as a fraction of the original")
    add_vocabulary_options(parser)
    add_negative_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.file is None):
        raise HardpromptError("give either a prompt or --file, not both")
    texts = [args.text] if args.file is None else read_lines(args.file)
    if not texts:
        raise HardpromptError(f"no prompts in {args.file}")
    config = optimizer_config(args)
    need_images = any(is_image_input(value) for value in args.negative)
    encoders = load_encoders(chosen_models(args), args.device, args.dtype, need_images, args.model_weights)
    results = []
    for text in texts:
        result = distill(
            text,
            model=encoders,
            config=config,
            model_weights=args.model_weights,
            ratio=args.ratio,
            negatives=args.negative,
            negative_weight=args.negative_weight,
            blocklist=args.blocklist,
            bank=args.bank,
            ascii_only=args.ascii_only,
            words_only=args.words_only,
        )
        results.append(result)
        if args.file is None:
            save(result, args.out)
        elif args.out:
            write_jsonl(args.out, [r.to_dict() for r in results])
        report(result, args.quiet)
        if result.interrupted:
            return 130
    return 0
