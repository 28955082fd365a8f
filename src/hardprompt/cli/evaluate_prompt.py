"""`hardprompt evaluate-prompt "PROMPT"`: accuracy of a prompt string on a model (transfer)."""

from __future__ import annotations

import argparse
import json

from ..apps.tune import evaluate_prompt
from ..io import write_json
from ..models.causal_lm import load_causal_lm
from .common import output_file
from .tune import add_task_options, task_format, valid_examples


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate-prompt", help="score a prompt string for LM classification")
    parser.add_argument("prompt", help="the prompt prepended to every input ('' for the template alone)")
    add_task_options(parser)
    parser.add_argument("--out", type=output_file, default=None, help="write the result here (JSON)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    task = task_format(args)
    examples = valid_examples(args)
    model = load_causal_lm(args.model, args.device, gguf_file=args.gguf_file)
    result = evaluate_prompt(args.prompt, model, examples, task)
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0
