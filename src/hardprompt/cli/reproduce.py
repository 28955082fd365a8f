"""`hardprompt reproduce IMAGES --out DIR`: the paper's Table 1 (PEZ vs. a phrase-bank baseline), resumable."""

from __future__ import annotations

import argparse
import sys

from ..apps.generators import BUILT_IN_GENERATORS
from ..apps.reproduce import PAPER_OPTIMIZER, evaluate_here, reproduce
from ..apps.score import DEFAULT_SCORER
from ..generation import DEFAULT_PIPELINE
from .common import (
    add_model_options,
    add_optimizer_options,
    add_ray_options,
    add_vocabulary_options,
    optimizer_config,
    output_folder,
    ray_options,
    stderr_note,
)
from .generate import add_generation_options, generation_config, quiet_diffusers


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="Table 1: learned prompts → generated images → reference scores (resumable)"
    )
    parser.add_argument("source", help='image folder, or JSONL of {"image": PATH, "caption": TEXT}')
    parser.add_argument(
        "--out", type=output_folder, required=True, help="output folder; rerunning with it skips finished images"
    )
    add_model_options(parser, PAPER_OPTIMIZER)
    parser.add_argument(
        "--generator", default=DEFAULT_PIPELINE, help=f"diffusers pipeline, or shapes ({DEFAULT_PIPELINE})"
    )
    parser.add_argument(
        "--scorer", default=DEFAULT_SCORER, help=f"reference CLIP, or shapes-reference ({DEFAULT_SCORER})"
    )
    parser.add_argument(
        "--baseline-bank",
        action="append",
        default=[],
        metavar="FILE",
        help="phrase file for the bank baseline (repeatable; none: no baseline)",
    )
    parser.add_argument("--baseline-phrases", type=int, default=4, help="most phrases in a baseline prompt (4)")
    parser.add_argument(
        "--random-baseline",
        action="store_true",
        help="add a floor: random allowed tokens, as many as the learned prompt has",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_optimizer_options(parser)  # per image
    add_vocabulary_options(parser)
    add_generation_options(parser, steps_flag="--gen-steps")
    add_ray_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.generator not in BUILT_IN_GENERATORS:
        quiet_diffusers()
    distributed = ray_options(args)
    executor = evaluate_here
    if distributed is not None:
        from ..distributed.reproduce import ray_executor

        executor = ray_executor({**distributed, "note": stderr_note(args.quiet)})
    summary = reproduce(
        args.source,
        args.out,
        optimizer=args.model,
        generator=args.generator,
        scorer=args.scorer,
        config=optimizer_config(args),
        generation=generation_config(args),
        baseline_banks=args.baseline_bank,
        baseline_phrases=args.baseline_phrases,
        random_baseline=args.random_baseline,
        blocklist=args.blocklist,
        bank=args.bank,
        ascii_only=args.ascii_only,
        words_only=args.words_only,
        limit=args.limit,
        device=args.device,
        progress=not args.quiet,
        executor=executor,
    )
    print(f"{args.out}/summary.md", flush=True)
    if not args.quiet:
        print(
            f"{summary['processed']} images done now, {summary['skipped']} done before, "
            f"{summary['finished']} of {len(summary['settings']['items'])} finished",
            file=sys.stderr,
        )
    return 130 if summary["interrupted"] else 0
