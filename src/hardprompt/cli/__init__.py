"""The `hardprompt` command line. Each subcommand lives in its own module with a `register()`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import HardpromptError
from . import bench, distill, evaluate_prompt, generate, invert, redteam, reproduce, score, screen, target, tune, ui

SUBCOMMANDS = (invert, distill, target, generate, score, reproduce, bench, tune, evaluate_prompt, ui, redteam, screen)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"hardprompt: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hardprompt", description="Learn short, human-readable hard prompts (PEZ and beyond).")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Library warnings off: a failed download is reported as our own one-line error."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.handler(args)
    except HardpromptError as error:
        print(f"hardprompt: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hardprompt: interrupted", file=sys.stderr)
        return 130
