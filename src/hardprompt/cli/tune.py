"""`hardprompt tune`: learn a prompt for LM classification (few-shot, seeds, holdout early stopping)."""

from __future__ import annotations

import argparse
import sys

from ..apps.tune import DEFAULT_LM, TuneSettings, method_names, tune
from ..data import load_examples, subsample
from ..errors import HardpromptError
from ..io import write_json
from ..models.causal_lm import load_causal_lm
from ..objectives.classification import TaskFormat, parse_verbalizer
from ..vocab import VocabularyRules
from ..words import require_english_words
from .common import OPTIMIZER_HELP, add_vocabulary_options, comma_list

DEFAULT_TEMPLATE = "{input} It was {mask}"


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """Model, data columns, template and verbalizer: shared by `tune` and `evaluate-prompt`."""
    parser.add_argument("--model", default=DEFAULT_LM, help=f"alias, hub id, local directory or .gguf ({DEFAULT_LM})")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside the --model repository or directory")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--valid", required=True, help="validation examples (.tsv, .csv or .jsonl)")
    parser.add_argument("--valid-limit", type=int, default=None, help="score a fixed random subset of this size")
    parser.add_argument("--text-column", default="text", help="column with the input text (text)")
    parser.add_argument("--label-column", default="label", help="column with the label (label)")
    parser.add_argument(
        "--template", default=DEFAULT_TEMPLATE, help=f"with {{input}} and {{mask}} ({DEFAULT_TEMPLATE!r})"
    )
    parser.add_argument("--verbalizer", required=True, help="LABEL:WORD pairs, e.g. '0:negative,1:positive'")


def task_format(args: argparse.Namespace) -> TaskFormat:
    return TaskFormat(args.template, parse_verbalizer(args.verbalizer))


def valid_examples(args: argparse.Namespace):
    if args.valid_limit is not None and args.valid_limit < 1:
        raise HardpromptError(f"--valid-limit must be at least 1 (got {args.valid_limit})")
    examples = load_examples(args.valid, args.text_column, args.label_column)
    return subsample(examples, args.valid_limit)


def seed_list(value: str) -> list[int]:
    try:
        return [int(item) for item in comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas: {value!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="learn a prompt that makes a causal LM classify (few-shot)")
    parser.add_argument("--train", required=True, help="training examples (.tsv, .csv or .jsonl)")
    add_task_options(parser)
    group = parser.add_argument_group("optimization")
    group.add_argument("--method", default="pez", choices=method_names(), help="optimizer, or 'empty' (pez)")
    group.add_argument("--prompt-len", type=int, default=10, help="tokens in the prompt (10)")
    group.add_argument("--fluency", type=float, default=0.0, help="weight γ of the fluency term in [0, 1] (0)")
    group.add_argument("--shots", type=int, default=None, help="k examples per class for training and k for holdout")
    group.add_argument("--epochs", type=int, default=100, help="passes over the training set (100)")
    group.add_argument("--steps", type=int, default=None, help="optimization steps (overrides --epochs)")
    group.add_argument("--batch-size", type=int, default=32, help="training examples per step (32)")
    group.add_argument("--holdout-every", type=int, default=10, help="score a holdout checkpoint every N steps (10)")
    group.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated seeds (0)")
    group.add_argument("--lr", type=float, default=None, help="learning rate (the method's default)")
    group.add_argument("--weight-decay", type=float, default=None, help="weight decay (the method's default)")
    group.add_argument("--optimizer", default=None, help=OPTIMIZER_HELP)
    group.add_argument("--max-seconds", type=float, default=None, help="wall-clock limit per seed")
    add_vocabulary_options(parser)
    parser.add_argument("--out", default=None, help="write the results here (JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.common import bank_phrases

    task = task_format(args)
    train = load_examples(args.train, args.text_column, args.label_column)
    valid = valid_examples(args)
    names = ("lr", "weight_decay", "optimizer")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    settings = TuneSettings(
        method=args.method,
        prompt_len=args.prompt_len,
        fluency=args.fluency,
        shots=args.shots,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        holdout_every=args.holdout_every,
        seeds=args.seeds,
        max_seconds=args.max_seconds,
        progress=not args.quiet,
        method_options=options,
    )
    rules = VocabularyRules(
        blocklist=tuple(args.blocklist),
        bank_phrases=bank_phrases(args.bank),
        ascii_only=args.ascii_only,
        words=require_english_words() if args.words_only else None,
    )

    def save(report: dict) -> None:
        if args.out:
            write_json(args.out, report)

    model = load_causal_lm(args.model, args.device, gguf_file=args.gguf_file)
    report = tune(model, train, valid, task, settings, rules=rules, on_seed=save)
    save(report)
    for row in report["seeds"]:
        print(f"{row['seed']}\t{row['valid_accuracy']:.4f}\t{row['prompt']}", flush=True)
    if not args.quiet:
        accuracy = report["valid_accuracy"]
        print(
            f"{args.method}: validation accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f} "
            f"over {len(report['seeds'])} seed(s) on {report['valid_examples']} examples",
            file=sys.stderr,
        )
    return 130 if any(row.get("interrupted") for row in report["seeds"]) else 0
