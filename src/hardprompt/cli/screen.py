"""`hardprompt screen PROMPT... --concept C`: flag prompts whose text features match a concept."""

from __future__ import annotations

import argparse
import json
import sys

from ..apps.distill import DEFAULT_TEXT_MODEL
from ..apps.screen import screen
from ..errors import HardpromptError
from ..io import read_lines, write_jsonl
from .common import add_model_options

EXIT_CODES = """exit codes: 0 no prompt flagged, 1 at least one prompt flagged, 2 bad input, 130 interrupted"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "screen",
        help="flag prompts whose text features are close to a concept's (a feature-based filter)",
        description="One JSON line per prompt on stdout: prompt, nearest concept, similarity, flagged.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompts to screen")
    parser.add_argument("--file", default=None, help="prompts to screen, one per line")
    parser.add_argument("--concept", action="append", default=[], required=True, help="a concept to flag (repeatable)")
    add_model_options(parser, DEFAULT_TEXT_MODEL)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--threshold", type=float, default=None, help="flag above this cosine similarity")
    group.add_argument(
        "--calibrate", default=None, metavar="BENIGN", help="benign prompts, one per line, to set the threshold on"
    )
    parser.add_argument(
        "--fpr", type=float, default=0.01, help="with --calibrate: share of the benign prompts to flag (0.01)"
    )
    parser.add_argument("--out", default=None, help="also write the JSON lines here")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.prompts) == (args.file is not None):
        raise HardpromptError("give either prompts or --file, not both")
    prompts = args.prompts or read_lines(args.file)
    if not prompts:
        raise HardpromptError(f"no prompts in {args.file}")
    benign = None
    if args.calibrate is not None:
        benign = read_lines(args.calibrate)
        if not benign:
            raise HardpromptError(f"no benign prompts in {args.calibrate}")
    verdicts, calibration = screen(
        prompts, args.concept, args.model, threshold=args.threshold, benign=benign, fpr=args.fpr, device=args.device
    )
    records = [verdict.to_dict() for verdict in verdicts]
    for record in records:
        print(json.dumps(record, ensure_ascii=False), flush=True)
    if args.out:
        write_jsonl(args.out, records)
    flagged = sum(verdict.flagged for verdict in verdicts)
    if not args.quiet:
        if calibration is not None:
            print(
                f"threshold {calibration.threshold:.4f}, calibrated to flag {calibration.benign_flagged} of "
                f"{calibration.benign} benign prompts (asked: {calibration.fpr:g})",
                file=sys.stderr,
            )
        print(f"{flagged} of {len(verdicts)} prompts flagged", file=sys.stderr)
    return 1 if flagged else 0
