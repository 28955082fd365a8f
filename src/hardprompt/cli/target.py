"""`hardprompt target "TARGET"`: a prompt after which a causal LM answers with the target text."""

from __future__ import annotations

import argparse
import sys

from ..apps.target import DEFAULT_LM, target_string
from .common import (
    add_model_options,
    add_optimizer_options,
    add_output_options,
    add_vocabulary_options,
    optimizer_config,
    report,
    save,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("target", help="find a prompt after which a causal LM answers with a given text")
    parser.add_argument("target", help="the answer to elicit, e.g. 'Sure, here is a poem'")
    parser.add_argument("--instruction", default="", help="the user's message before the prompt")
    parser.add_argument(
        "--no-chat", action="store_true", help="plain text: instruction PROMPT target, no chat template"
    )
    add_model_options(parser, DEFAULT_LM)
    add_optimizer_options(parser, prompt_len=20)
    add_vocabulary_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = target_string(
        args.target,
        model=args.model,
        config=optimizer_config(args),
        instruction=args.instruction,
        chat=not args.no_chat,
        blocklist=args.blocklist,
        bank=args.bank,
        ascii_only=args.ascii_only,
        words_only=args.words_only,
        device=args.device,
    )
    save(result, args.out)
    report(result, args.quiet)
    if not args.quiet:
        says = "says" if result.config["greedy_says_target"] else "does not say"
        print(f"target NLL {result.config['target_nll']:.4f}; greedy decoding {says} the target", file=sys.stderr)
    return 130 if result.interrupted else 0
