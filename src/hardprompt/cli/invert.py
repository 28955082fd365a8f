"""`hardprompt invert IMAGE [IMAGE ...]`: image(s) → prompt."""

from __future__ import annotations

import argparse

from ..apps.invert import DEFAULT_IMAGE_MODEL, invert
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
    parser = subparsers.add_parser("invert", help="learn a prompt for one or several images")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="target image file(s)")
    add_model_options(parser, DEFAULT_IMAGE_MODEL, several=True)
    add_dtype_option(parser)
    add_optimizer_options(parser)
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: all)")
    add_vocabulary_options(parser)
    add_negative_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = invert(
        args.images,
        model=chosen_models(args),
        config=optimizer_config(args, batch_size=args.batch_size),
        model_weights=args.model_weights,
        negatives=args.negative,
        negative_weight=args.negative_weight,
        blocklist=args.blocklist,
        bank=args.bank,
        ascii_only=args.ascii_only,
        device=args.device,
        dtype=args.dtype,
    )
    save(result, args.out)
    report(result, args.quiet)
    return 130 if result.interrupted else 0
