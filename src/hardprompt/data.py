"""Labelled text examples from TSV, CSV or JSONL files, and few-shot sampling."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import HardpromptError


@dataclass(frozen=True)
class Example:
    """One input text and its label (labels are kept as strings, as written in the file)."""

    text: str
    label: str


def _rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HardpromptError(f"cannot read {path}: {error}") from None
    if suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise HardpromptError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise HardpromptError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
        return rows
    if suffix not in (".tsv", ".csv", ".txt"):
        raise HardpromptError(f"{path}: unknown data format {suffix!r}; use .tsv, .csv or .jsonl")
    delimiter = "," if suffix == ".csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if suffix == ".csv" else csv.QUOTE_NONE
    return list(csv.DictReader(text.splitlines(), delimiter=delimiter, quoting=quoting))


def load_examples(path: str | Path, text_column: str = "text", label_column: str = "label") -> list[Example]:
    """Examples from a TSV/CSV file with a header row, or a JSONL file of objects."""
    path = Path(path)
    if not path.is_file():
        raise HardpromptError(f"data file not found: {path}")
    rows = _rows(path)
    if not rows:
        raise HardpromptError(f"{path} has no examples")
    for column in (text_column, label_column):
        if column not in rows[0]:
            found = ", ".join(str(key) for key in rows[0])
            raise HardpromptError(f"{path} has no column {column!r} (columns: {found})")
    examples = []
    for number, row in enumerate(rows, 1):
        text, label = row.get(text_column), row.get(label_column)
        if text is None or label is None or not str(text).strip():
            raise HardpromptError(f"{path}: example {number} has an empty {text_column!r} or {label_column!r}")
        examples.append(Example(text=str(text).strip(), label=str(label).strip()))
    return examples


def few_shot(
    examples: Sequence[Example], shots: int, labels: Sequence[str], seed: int
) -> tuple[list[Example], list[Example]]:
    """`shots` training and `shots` holdout examples per label, drawn without overlap, reproducibly."""
    if shots < 1:
        raise HardpromptError(f"shots must be at least 1 (got {shots})")
    rng = random.Random(seed)
    train: list[Example] = []
    holdout: list[Example] = []
    for label in labels:
        pool = [example for example in examples if example.label == label]
        if len(pool) < 2 * shots:
            raise HardpromptError(f"label {label!r} has {len(pool)} examples; {shots} shots need {2 * shots}")
        picked = rng.sample(pool, 2 * shots)
        train += picked[:shots]
        holdout += picked[shots:]
    return train, holdout


def subsample(examples: Sequence[Example], size: int | None, seed: int = 0) -> list[Example]:
    """A fixed random subset of `size` examples (all of them when size is None or large)."""
    if size is None or size >= len(examples):
        return list(examples)
    return random.Random(seed).sample(list(examples), size)
