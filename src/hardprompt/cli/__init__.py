"""The `hardprompt` command line. Each subcommand lives in its own module with a `register()`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..errors import HardpromptError, HardpromptWarning
from ..models.frozen import low_memory
from . import bench, distill, evaluate_prompt, generate, invert, redteam, reproduce, score, screen, target, tune, ui

SUBCOMMANDS = (invert, distill, target, generate, score, reproduce, bench, tune, evaluate_prompt, ui, redteam, screen)

#: Exit codes of a run stopped by Ctrl-C (SIGINT) and by SIGTERM (kill, timeout, Slurm, Kubernetes, Docker).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: Characters that break a line (str.splitlines' set), written as escapes so that a message is one line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(message: object) -> str:
    """`message` as one line: line breaks (from user input echoed in it) escaped."""
    return str(message).translate(_LINE_BREAKS)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"hardprompt: error: {one_line(message)}\n")


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


@contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """While inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does; yields the signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """While inside, a HardpromptWarning is one line on stderr, every time it is raised."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, HardpromptWarning):
            print(f"hardprompt: warning: {one_line(message)}", file=sys.stderr, flush=True)
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", HardpromptWarning)
        original = warnings.showwarning
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input, 130 Ctrl-C, 143 SIGTERM).

    SIGTERM stops a run as Ctrl-C does: the best prompt so far is printed and written to --out.
    """
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    with _sigterm_as_interrupt() as received, _one_line_warnings(), low_memory(getattr(args, "low_memory", False)):
        try:
            code = args.handler(args)
        except HardpromptError as error:
            print(f"hardprompt: error: {one_line(error)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("hardprompt: terminated" if received else "hardprompt: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and received else code
