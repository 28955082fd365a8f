"""`hardprompt redteam TARGET --out rounds.jsonl`: iterative blocklist red-teaming (paper §6, Figure 10)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..apps.distill import DEFAULT_TEXT_MODEL
from ..apps.redteam import load_rounds, redteam, save_rounds
from .common import (
    add_dtype_option,
    add_model_options,
    add_optimizer_options,
    add_vocabulary_options,
    optimizer_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "redteam",
        help="ban the words a found prompt relies on, optimize again, and repeat",
        description="Each round optimizes a prompt for TARGET under the blocklist so far, then bans the "
        "prompt's words whose removal costs the most round-trip score. One JSON line per round on stdout "
        "and in --out; a PNG of score per round; the final blocklist, one word a line.",
    )
    parser.add_argument("target", help="the concept: a text, or an image file (for an image model)")
    add_model_options(parser, DEFAULT_TEXT_MODEL)
    add_dtype_option(parser)
    parser.add_argument("--rounds", type=int, default=4, help="rounds in all, resumed ones included (4)")
    parser.add_argument("--ban-per-round", type=int, default=2, help="words banned after each round (2)")
    parser.add_argument(
        "--min-word-length", type=int, default=3, help="never ban shorter words: bans are substrings (3)"
    )
    add_optimizer_options(parser, prompt_len=8)
    add_vocabulary_options(parser)
    parser.add_argument("--out", required=True, help="the rounds, one JSON line each (written after every round)")
    parser.add_argument("--plot", default=None, help="PNG of score per round (default: OUT with .png)")
    parser.add_argument(
        "--final-blocklist", default=None, help="the final blocklist, one word a line (default: OUT.blocklist.txt)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the rounds already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plot = args.plot or out.with_suffix(".png")
    final_blocklist = args.final_blocklist or out.with_name(out.stem + ".blocklist.txt")
    previous = load_rounds(out) if args.resume and out.is_file() else []
    shown = len(previous)

    def on_round(rounds: list) -> None:
        nonlocal shown
        save_rounds(rounds, out, plot, final_blocklist)
        for done in rounds[shown:]:
            print(json.dumps(done.to_dict(), ensure_ascii=False), flush=True)
            if not args.quiet:
                banned = ", ".join(done.banned) or "nothing"
                print(f"round {done.round}: score {done.score:.4f}, bans {banned}: {done.prompt}", file=sys.stderr)
        shown = len(rounds)

    result = redteam(
        args.target,
        model=args.model,
        config=optimizer_config(args),
        rounds=args.rounds,
        ban_per_round=args.ban_per_round,
        min_word_length=args.min_word_length,
        blocklist=args.blocklist,
        bank=args.bank,
        ascii_only=args.ascii_only,
        previous=previous,
        on_round=on_round,
        device=args.device,
        dtype=args.dtype,
    )
    if result.interrupted:
        print(f"hardprompt: interrupted; {len(result.rounds)} finished rounds are in {out}", file=sys.stderr)
        return 130
    if result.rounds and not args.quiet:
        print(f"final blocklist ({final_blocklist}): {', '.join(result.final_blocklist)}", file=sys.stderr)
    return 0
