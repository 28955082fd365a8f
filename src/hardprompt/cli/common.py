"""Options and output shared by the subcommands."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import HardpromptError
from ..io import write_json
from ..models.resolve import DTYPES
from ..optim.pez import OPTIMIZERS, PEZConfig
from ..optim.registry import DEFAULT_METHOD, METHODS, MethodConfig, build_config
from ..optim.result import Result

OPTIMIZER_HELP = f"update rule of pez and soft: {' or '.join(OPTIMIZERS)} (adamw)"


def finite_float(value: str) -> float:
    """Option type: a finite number ('nan', 'inf' and '1e999' are refused)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {value!r})")
    return number


def positive_float(value: str) -> float:
    """Option type: a finite number above 0."""
    number = finite_float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {value!r})")
    return number


def nonnegative_float(value: str) -> float:
    """Option type: a finite number, 0 or above."""
    number = finite_float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {value!r})")
    return number


def _check_parents(path: Path) -> None:
    """Refuse a path below an existing file: its folder could never be made."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, not a folder")
            return


def output_file(value: str) -> str:
    """Option type of --out FILE: refused before any work if it names a folder or lies below a file."""
    path = Path(value)
    if not value.strip():
        raise argparse.ArgumentTypeError("the output file name is empty")
    if value.endswith(("/", os.sep)) or path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name")
    _check_parents(path)
    return value


def output_folder(value: str) -> str:
    """Option type of --out DIR: refused before any work if it names an existing file or lies below one."""
    path = Path(value)
    if not value.strip():
        raise argparse.ArgumentTypeError("the output folder is empty")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file; give a folder")
    _check_parents(path)
    return value


def output_prefix(value: str) -> str:
    """Option type of --out PREFIX (writes PREFIX.jsonl, PREFIX.md, PREFIX.png): each checked as a file name."""
    if not value.strip() or value.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"give a file prefix such as results/bench (got {value!r})")
    for suffix in (".jsonl", ".md", ".png"):
        output_file(value + suffix)
    return value


def comma_list(value: str) -> list[str]:
    """Parse 'a,b, c' into ['a', 'b', 'c']."""
    return [item.strip() for item in value.split(",") if item.strip()]


def weight_list(value: str) -> list[float]:
    """Parse '1, 0.5' into [1.0, 0.5]."""
    try:
        return [float(item) for item in comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {value!r}") from None


def add_model_options(parser: argparse.ArgumentParser, default_model: str, several: bool = False) -> None:
    """--model and --device; with `several`, --model repeats (one prompt for all) and --model-weights weighs them."""
    names = "alias, hub id, open_clip:ARCH/PRETRAINED or local directory"
    if several:
        parser.add_argument(
            "--model",
            action="append",
            default=None,
            help=f"{names} ({default_model}); repeat it, or give sdxl, to learn one prompt for several text encoders",
        )
        parser.add_argument("--model-weights", type=weight_list, default=None, help="one weight per model (1,1,...)")
        parser.set_defaults(default_model=default_model)
    else:
        parser.add_argument("--model", default=default_model, help=f"{names} ({default_model})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


def chosen_models(args: argparse.Namespace) -> list[str]:
    """The --model values of a subcommand that takes several (the default when none is given)."""
    return args.model or [args.default_model]


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=list(DTYPES),
        help="precision of the model's weights (auto: float16 on a GPU, float32 on the CPU); bfloat16 is "
        "faster on recent CPUs",
    )
    parser.add_argument(
        "--low-memory",
        action="store_true",
        help="keep float32 linear weights unpacked on the CPU: two fewer copies of them, slower steps",
    )


def add_optimizer_options(parser: argparse.ArgumentParser, prompt_len: int = 16) -> None:
    """--method and its settings; unset settings take the method's defaults (PEZ's are the paper's)."""
    pez_defaults = PEZConfig()
    group = parser.add_argument_group("optimization")
    group.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=list(METHODS),
        help=f"optimizer ({DEFAULT_METHOD}); 'soft' is a continuous upper bound, not a hard prompt",
    )
    group.add_argument("--prompt-len", type=int, default=prompt_len, help=f"tokens in the prompt ({prompt_len})")
    group.add_argument("--steps", type=int, default=None, help=f"optimization steps (pez: {pez_defaults.steps})")
    group.add_argument("--lr", type=positive_float, default=None, help=f"learning rate (pez: AdamW {pez_defaults.lr})")
    group.add_argument("--weight-decay", type=nonnegative_float, default=None, help="AdamW weight decay (pez: 0.1)")
    group.add_argument("--optimizer", default=None, help=OPTIMIZER_HELP)
    group.add_argument("--restarts", type=int, default=None, help="prompts optimized in one batch (1)")
    group.add_argument("--top-k", type=int, default=None, help="gradient candidates per position (gcg, autoprompt)")
    group.add_argument("--search-width", type=int, default=None, help="candidates evaluated per step (gcg, random)")
    group.add_argument("--seed", type=int, default=pez_defaults.seed, help="random seed (0)")
    group.add_argument("--max-seconds", type=positive_float, default=None, help="stop after this wall-clock time")
    group.add_argument("--max-forward-passes", type=int, default=None, help="stop after this many prompt evaluations")
    group.add_argument(
        "--patience", type=int, default=None, help="stop when the best round-trip score has not improved for N steps"
    )
    group.add_argument(
        "--cuda-graph", action="store_true", help="pez on a GPU: capture each step in a CUDA graph (experimental)"
    )


def add_vocabulary_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("vocabulary")
    group.add_argument("--blocklist", type=comma_list, default=[], help="comma-separated substrings to avoid")
    group.add_argument("--bank", default=None, help="file of phrases (one per line); only their tokens are used")
    group.add_argument("--ascii-only", action="store_true", help="only tokens that are printable ASCII")
    group.add_argument(
        "--words-only", action="store_true", help="only tokens that are whole English words (readable prompts)"
    )


def add_negative_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="TEXT_OR_IMAGE",
        help="push away from this (repeatable)",
    )
    parser.add_argument(
        "--negative-weight", type=finite_float, default=1.0, help="weight of the negative targets (1.0)"
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_file, default=None, help="write the result here (JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def optimizer_config(args: argparse.Namespace, batch_size: int | None = None) -> MethodConfig:
    """The config of the chosen --method from the parsed options."""
    return build_config(
        args.method,
        prompt_len=args.prompt_len,
        steps=args.steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        restarts=args.restarts,
        top_k=args.top_k,
        search_width=args.search_width,
        batch_size=batch_size,
        seed=args.seed,
        max_seconds=args.max_seconds,
        max_forward_passes=args.max_forward_passes,
        cuda_graph=args.cuda_graph or None,
        patience=args.patience,
        progress=not args.quiet,
    )


def report(result: Result, quiet: bool) -> None:
    """Print the prompt on stdout and, unless quiet, a one-line summary on stderr."""
    print(result.prompt, flush=True)
    if not quiet:
        stopped = " (interrupted)" if result.interrupted else ""
        if result.hard:
            scores = f"score {result.score:.4f} (projected {result.projected_score:.4f})"
        else:
            scores = (
                f"soft prompt score {result.score:.4f} (NOT a hard prompt; the line above is its "
                f"nearest-token decode, score {result.projected_score:.4f})"
            )
        print(
            f"{result.method}: {scores}, {result.steps} steps, {result.forward_passes} forward passes "
            f"in {result.seconds:.1f} s{stopped}",
            file=sys.stderr,
        )


def save(result: Result, out: str | None) -> None:
    if out:
        write_json(out, result.to_dict())


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS], --workers and what each worker holds (docs/ray.md)."""
    group = parser.add_argument_group("Ray (docs/ray.md)")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: auto (this machine's cluster), ray://HOST:10001, HOST:6379; none: a local Ray instance",
    )
    group.add_argument(
        "--workers", type=int, default=None, help="Ray workers (default: as many as the cluster's GPUs or CPUs hold)"
    )
    group.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs each Ray worker holds (1)")
    group.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs of a CUDA worker (1; 0.5 shares)")


def ray_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The Ray settings of the parsed options, or None for a local run (where they are refused)."""
    given = [name for name in ("workers", "cpus_per_worker", "gpus_per_worker") if getattr(args, name) is not None]
    if args.ray is None:
        if given:
            raise HardpromptError(f"--{given[0].replace('_', '-')} needs --ray")
        return None
    if args.ray and Path(args.ray).exists():
        raise HardpromptError(f"--ray took {args.ray!r} for its address; put --ray after it, or write --ray auto")
    return {
        "address": args.ray,
        "workers": args.workers,
        "cpus_per_worker": 1.0 if args.cpus_per_worker is None else args.cpus_per_worker,
        "gpus_per_worker": 1.0 if args.gpus_per_worker is None else args.gpus_per_worker,
    }


def stderr_note(quiet: bool) -> Callable[[str], None]:
    """A function that prints `hardprompt: TEXT` on stderr, or nothing when `quiet`."""

    def note(text: str) -> None:
        if not quiet:
            print(f"hardprompt: {text}", file=sys.stderr)

    return note
