"""`hardprompt score TARGET --generated IMAGES`: reference-CLIP similarity of generated images to targets."""

from __future__ import annotations

import argparse
import sys

from ..apps.score import DEFAULT_SCORER, expand_image_paths, load_scorer, reference_score
from ..io import write_json
from .common import output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score generated images against targets with a reference CLIP")
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="target image file(s) or folder(s)")
    parser.add_argument(
        "--generated", nargs="+", required=True, metavar="IMAGE", help="generated image file(s) or folder(s)"
    )
    parser.add_argument("--scorer", default=DEFAULT_SCORER, help=f"CLIP: alias, hub id or local dir ({DEFAULT_SCORER})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--out", type=output_file, default=None, help="write the scores here (JSON)")
    parser.add_argument("--quiet", action="store_true", help="only the mean score")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    targets = expand_image_paths(args.targets)
    generated = expand_image_paths(args.generated)
    scorer = load_scorer(args.scorer, args.device)
    score = reference_score(targets, generated, scorer)
    if args.out:
        record = {**score.to_dict(), "targets": [str(p) for p in targets], "generated": [str(p) for p in generated]}
        write_json(args.out, record)
    print(f"{score.mean:.4f}", flush=True)
    if not args.quiet:
        for path, value in zip(generated, score.per_image, strict=True):
            print(f"{value:.4f}  {path}", file=sys.stderr)
    return 0
