"""`hardprompt bench`: tasks × methods × seeds at equal budget → JSONL rows, a Markdown table, a PNG plot."""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from ..bench import TASKS, Budget, run_suite
from ..bench.peers import PEERS
from ..bench.report import markdown_table, plot
from ..errors import HardpromptError
from ..io import atomic_write_text, write_jsonl
from ..optim.registry import METHODS
from .common import comma_list


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="compare optimizers on benchmark tasks at equal budget")
    parser.add_argument("--tasks", type=comma_list, default=["planted", "distill"], help=f"of: {', '.join(TASKS)}")
    parser.add_argument(
        "--methods",
        type=comma_list,
        default=list(METHODS),
        help=f"optimizers (default: all registered); external peers: {', '.join(PEERS)} (lm-target only)",
    )
    parser.add_argument("--seeds", type=comma_list, default=["0"], help="comma-separated seeds (0)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="wall-clock budget per run (60)")
    parser.add_argument("--max-forward-passes", type=int, default=None, help="forward-pass budget per run")
    parser.add_argument("--steps", type=int, default=None, help="step budget per run (default: none)")
    parser.add_argument("--prompts", default=None, help="prompt set for the distill task (one per line)")
    parser.add_argument("--ratio", type=float, default=0.3, help="distill: prompt length / original length (0.3)")
    parser.add_argument("--planted-len", type=int, default=8, help="planted: tokens in the planted prompt (8)")
    parser.add_argument("--planted-count", type=int, default=2, help="planted: planted prompts (2)")
    parser.add_argument("--scenes", type=int, default=2, help="shapes: held-out scenes to invert (2)")
    parser.add_argument("--targets", default=None, help="lm-target: file of INSTRUCTION<TAB>TARGET lines")
    parser.add_argument(
        "--prompt-len", type=int, default=None, help="prompt length (shapes 8, lm-target 10, distill: --ratio)"
    )
    parser.add_argument("--words-only", action="store_true", help="distill, shapes: only whole English words")
    parser.add_argument("--model", default=None, help="use this model for every task (default: each task's own)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--out", required=True, help="output prefix: writes PREFIX.jsonl, PREFIX.md, PREFIX.png")
    parser.set_defaults(handler=run)


def command_line(args: argparse.Namespace) -> str:
    """The canonical command that reproduces this run."""
    words = ["hardprompt", "bench", "--tasks", ",".join(args.tasks), "--methods", ",".join(args.methods)]
    words += ["--seeds", ",".join(args.seeds)]
    for option in ("max_seconds", "max_forward_passes", "steps", "prompts", "model", "prompt_len"):
        if getattr(args, option) is not None:
            words += ["--" + option.replace("_", "-"), str(getattr(args, option))]
    if "distill" in args.tasks and args.prompt_len is None:
        words += ["--ratio", str(args.ratio)]
    if args.words_only:
        words += ["--words-only"]
    if "planted" in args.tasks:
        words += ["--planted-len", str(args.planted_len), "--planted-count", str(args.planted_count)]
    if "shapes" in args.tasks:
        words += ["--scenes", str(args.scenes)]
    if "lm-target" in args.tasks and args.targets:
        words += ["--targets", args.targets]
    return shlex.join([*words, "--device", args.device, "--out", args.out])


def write_reports(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """PREFIX.jsonl, PREFIX.md (command, machine, table) and PREFIX.png."""
    write_jsonl(f"{args.out}.jsonl", rows)
    if not rows:
        return
    header = (
        "# Optimizer benchmark\n\n"
        f"Command: `{command_line(args)}`\n\n"
        f"Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"device {args.device}. Score: round-trip score of the final prompt (higher is better); "
        "`soft` is a continuous prompt, not a hard prompt (upper bound).\n\n"
    )
    figure = f"\n![best score vs wall-clock time]({Path(args.out).name}.png)\n"
    atomic_write_text(f"{args.out}.md", header + markdown_table(rows) + figure)
    plot(rows, f"{args.out}.png")


def run(args: argparse.Namespace) -> int:
    try:
        seeds = [int(seed) for seed in args.seeds]
    except ValueError:
        raise HardpromptError(f"seeds must be integers (got {','.join(args.seeds)})") from None
    budget = Budget(seconds=args.max_seconds, forward_passes=args.max_forward_passes, steps=args.steps)
    options = {
        "prompts": args.prompts,
        "ratio": args.ratio,
        "planted_len": args.planted_len,
        "planted_count": args.planted_count,
        "scenes": args.scenes,
        "targets": args.targets,
        "prompt_len": args.prompt_len,
        "words_only": args.words_only,
    }
    saved: list[dict[str, Any]] = []

    def on_row(rows: list[dict[str, Any]]) -> None:
        saved[:] = rows
        write_jsonl(f"{args.out}.jsonl", rows)
        last = rows[-1]
        print(
            f"{last['task']}/{last['instance']} {last['method']} seed {last['seed']}: score {last['score']:.4f} "
            f"({last['steps']} steps, {last['forward_passes']} passes, {last['seconds']:.1f} s) {last['prompt']!r}",
            file=sys.stderr,
            flush=True,
        )

    try:
        run_suite(args.tasks, args.methods, seeds, budget, options, args.model, args.device, on_row)
    finally:
        write_reports(saved, args)
    return 0
