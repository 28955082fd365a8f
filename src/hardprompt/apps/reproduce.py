"""The paper's Table 1 harness: target images → learned prompts → generated images → reference scores.

For each target image: a PEZ prompt (optimized with one CLIP), a phrase-bank baseline prompt ranked
by the same CLIP, the image's caption when one is given, and optionally a floor of random allowed
tokens as long as the learned prompt; each prompt generates images with the
same seeds, and a reference CLIP (not used to optimize) scores them against the target. Each finished
image leaves a record file, so a rerun skips it; the summary table is rewritten after every image.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from ..errors import HardpromptError
from ..generation import GenerationConfig, TextToImage, contact_sheet, stack_sheets
from ..io import atomic_save_image, atomic_write_text, image_files, load_image, read_lines, write_json
from ..models import TextEncoder
from ..optim.pez import PEZConfig, random_allowed_ids
from ..optim.registry import MethodConfig, method_of
from ..vocab import Vocabulary
from .bank import PhraseBank
from .common import BankLike, as_encoder, bank_phrases, build_vocabulary, describe
from .generators import load_generator
from .invert import invert
from .score import load_scorer, reference_score

#: The paper's optimizer for Table 1: OpenCLIP ViT-H/14, the text encoder of Stable Diffusion 2.
PAPER_OPTIMIZER = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"

RANDOM_TOKENS = "random-tokens"
"""The floor row: random allowed tokens, as many as the learned prompt has."""

METHOD_LABELS = {
    "pez": "PEZ",
    "bank": "bank baseline (CLIP Interrogator without BLIP)",
    "caption": "caption",
    RANDOM_TOKENS: "random tokens (floor)",
}


@dataclass(frozen=True)
class Item:
    """One target image; `key` names its record and output files."""

    key: str
    image: Path
    caption: str | None = None


def _key(index: int, name: str) -> str:
    return f"{index:05d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:60]}"


def read_items(source: str | Path) -> list[Item]:
    """Items from an image folder (sorted) or a JSONL file of {"image": PATH, "caption": TEXT?} lines.

    Relative image paths in a JSONL file are relative to the file's folder.
    """
    source = Path(source)
    if source.is_dir():
        items = [Item(_key(i, path.stem), path) for i, path in enumerate(image_files(source))]
    elif source.suffix.lower() == ".jsonl" and source.is_file():
        items = []
        for number, line in enumerate(read_lines(source), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise HardpromptError(f"{source}:{number}: not JSON ({error.msg})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                raise HardpromptError(f'{source}:{number}: expected {{"image": PATH, "caption": TEXT}}')
            caption = entry.get("caption")
            if caption is not None and (not isinstance(caption, str) or not caption.strip()):
                raise HardpromptError(f"{source}:{number}: the caption must be a non-empty string")
            image = Path(entry["image"]).expanduser()
            image = image if image.is_absolute() else source.parent / image
            items.append(Item(_key(len(items), image.stem), image, caption))
    else:
        raise HardpromptError(f"{source}: give an image folder or a .jsonl file of image paths and captions")
    if not items:
        raise HardpromptError(f"no images in {source}")
    return items


def random_prompt(vocab: Vocabulary, length: int, seed: int) -> str:
    """The text of `length` (at least 1) allowed tokens drawn at random from `seed`: the floor row."""
    return vocab.decode(random_allowed_ids(vocab.allowed_ids, (1, max(1, length)), seed)[0].tolist())


def _spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: number of images, reference score and optimizer score (mean, std), mean prompt tokens."""
    methods = list(dict.fromkeys(name for record in records for name in record["methods"]))
    rows = []
    for method in methods:
        entries = [record["methods"][method] for record in records if method in record["methods"]]
        reference_mean, reference_std = _spread([e["reference_score"] for e in entries])
        optimizer_mean, optimizer_std = _spread([e["optimizer_score"] for e in entries])
        rows.append(
            {
                "method": method,
                "label": METHOD_LABELS.get(method, method),
                "images": len(entries),
                "reference_mean": reference_mean,
                "reference_std": reference_std,
                "optimizer_mean": optimizer_mean,
                "optimizer_std": optimizer_std,
                "tokens_mean": statistics.fmean(e["tokens"] for e in entries),
            }
        )
    return rows


def summary_markdown(rows: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The summary table in Markdown, with the models that produced it."""
    lines = [
        f"Optimizer CLIP: `{settings['optimizer']}` · generator: `{settings['generator']}` · "
        f"reference scorer: `{settings['scorer']}` · {settings['generation']['n']} images per prompt",
        "",
        "| method | images | reference score (mean ± std) | optimizer-CLIP score (mean ± std) | prompt tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['images']} | {row['reference_mean']:.3f} ± {row['reference_std']:.3f} | "
            f"{row['optimizer_mean']:.3f} ± {row['optimizer_std']:.3f} | {row['tokens_mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"


class Harness:
    """The output folder of one reproduction run: settings, per-image records, images, sheets, summary."""

    def __init__(self, out: str | Path, settings: dict[str, Any]) -> None:
        self.out = Path(out)
        self.settings = settings
        settings_path = self.out / "settings.json"
        if settings_path.is_file():
            previous = json.loads(settings_path.read_text(encoding="utf-8"))
            if previous != json.loads(json.dumps(settings)):
                changed = sorted(k for k in settings.keys() | previous.keys() if previous.get(k) != settings.get(k))
                raise HardpromptError(
                    f"{self.out} holds a run with other settings ({', '.join(changed)}); use another --out"
                )
        else:
            write_json(settings_path, settings)

    def record_path(self, item: Item) -> Path:
        return self.out / "records" / f"{item.key}.json"

    def is_done(self, item: Item) -> bool:
        return self.record_path(item).is_file()

    def records(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        return [json.loads(self.record_path(i).read_text(encoding="utf-8")) for i in items if self.is_done(i)]

    def save_images(self, item: Item, method: str, images: Sequence[Image.Image]) -> list[str]:
        """Save the generated images; their paths relative to the output folder."""
        paths = []
        for index, image in enumerate(images):
            relative = Path("images") / item.key / f"{method}-{index}.png"
            atomic_save_image(self.out / relative, image)
            paths.append(relative.as_posix())
        return paths

    def save(self, item: Item, outcome: Outcome) -> None:
        """Write an evaluated image: its images, its sheet, then its record (last: the record marks it done)."""
        for method, images in outcome.images.items():
            outcome.record["methods"][method]["images"] = self.save_images(item, method, images)
        atomic_save_image(self.out / "sheets" / f"{item.key}.png", outcome.sheet)
        write_json(self.record_path(item), outcome.record)

    def write_summary(self, items: Sequence[Item]) -> dict[str, Any]:
        rows = summarize(self.records(items))
        summary = {"settings": self.settings, "finished": sum(map(self.is_done, items)), "rows": rows}
        write_json(self.out / "summary.json", summary)
        atomic_write_text(self.out / "summary.md", summary_markdown(rows, self.settings))
        return summary


@dataclass
class Outcome:
    """One target image evaluated: its record (image paths still to add), the images of each method, the sheet."""

    record: dict[str, Any]
    images: dict[str, list[Image.Image]]
    sheet: Image.Image


class ImageEvaluator:
    """The models of a reproduction, loaded once: `evaluate` does one target image's whole row of Table 1.

    `bank_phrases` are the baseline's phrases (none: no baseline); `bank` restricts the learned
    prompts' vocabulary (a file or its phrases). Writes nothing: the caller saves what it returns.
    """

    def __init__(
        self,
        optimizer: str | TextEncoder,
        generator: str | TextToImage,
        scorer: str | TextEncoder,
        config: MethodConfig,
        generation: GenerationConfig,
        *,
        bank_phrases: Sequence[str] = (),
        baseline_phrases: int = 4,
        random_baseline: bool = False,
        blocklist: Sequence[str] = (),
        bank: BankLike = None,
        ascii_only: bool = False,
        words_only: bool = False,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.optimizer = as_encoder(optimizer, device)
        if not self.optimizer.supports_images:
            raise HardpromptError(f"model {self.optimizer.name} has no image encoder; use a CLIP model")
        self.scorer = self.optimizer if scorer == self.optimizer.name else load_scorer(scorer, device)
        self.generator = (
            load_generator(generator, device=device, progress=False) if isinstance(generator, str) else generator
        )
        self.baseline = PhraseBank(self.optimizer, bank_phrases, progress=progress) if bank_phrases else None
        self.vocabulary = {"blocklist": blocklist, "bank": bank, "ascii_only": ascii_only, "words_only": words_only}
        self.vocab = build_vocabulary(self.optimizer, **self.vocabulary) if random_baseline else None
        self.config = config
        self.generation = generation
        self.baseline_phrases = baseline_phrases

    def evaluate(self, item: Item, index: int, target: Image.Image) -> Outcome | None:
        """The outcome for `item` (the `index`-th of the run, which seeds its random baseline), whose image is
        `target`; None when the optimization was interrupted (nothing is generated then)."""
        learned = invert([target], model=self.optimizer, config=self.config, **self.vocabulary)
        if learned.interrupted:
            return None
        learned_method = method_of(self.config).name
        methods: dict[str, dict[str, Any]] = {
            learned_method: {"prompt": learned.prompt, "optimizer_score": learned.score}
        }
        target_features = self.optimizer.encode_images([target])
        if self.baseline is not None:
            found = self.baseline.prompt_for(target_features, max_phrases=self.baseline_phrases)
            methods["bank"] = {"prompt": found.prompt, "optimizer_score": found.score}
        texts: dict[str, str] = {}
        if item.caption is not None:
            texts["caption"] = item.caption
        if self.vocab is not None:
            texts[RANDOM_TOKENS] = random_prompt(self.vocab, len(learned.token_ids), self.config.seed + index)
        for method, text in texts.items():
            text_score = float((self.optimizer.encode_texts([text]) @ target_features.T).mean())
            methods[method] = {"prompt": text, "optimizer_score": text_score}
        images: dict[str, list[Image.Image]] = {}
        sheets = []
        for method, entry in methods.items():
            images[method] = self.generator.generate(entry["prompt"], self.generation)
            score = reference_score([target], images[method], self.scorer)
            entry.update(
                tokens=self.optimizer.count_tokens(entry["prompt"]),
                reference_score=score.mean,
                reference_scores=score.per_image,
            )
            caption = f"{METHOD_LABELS.get(method, method)}: {entry['prompt']}  (reference {score.mean:.3f})"
            sheets.append(contact_sheet(images[method], caption, target))
        record = {
            "key": item.key,
            "image": str(item.image),
            "caption": item.caption,
            "methods": methods,
            "optimization": {
                "method": learned_method,
                "steps": learned.steps,
                "seconds": learned.seconds,
                "token_ids": learned.token_ids,
            },
        }
        return Outcome(record, images, stack_sheets(sheets))


Pending = Sequence[tuple[int, Item]]
Executor = Callable[[dict[str, Any], Pending], Iterator[tuple[Item, Outcome | None]]]
"""Runs the pending (index, item) pairs on `ImageEvaluator`s built from the options; yields each item's outcome."""


def evaluate_here(options: dict[str, Any], pending: Pending) -> Iterator[tuple[Item, Outcome | None]]:
    """The local executor: one `ImageEvaluator` in this process, the items in order."""
    evaluator = ImageEvaluator(**options)
    for index, item in pending:
        yield item, evaluator.evaluate(item, index, load_image(item.image))


def reproduce(
    source: str | Path,
    out: str | Path,
    optimizer: str | TextEncoder,
    generator: str | TextToImage,
    scorer: str | TextEncoder,
    config: MethodConfig | None = None,
    generation: GenerationConfig | None = None,
    *,
    baseline_banks: Sequence[str | Path] = (),
    baseline_phrases: int = 4,
    random_baseline: bool = False,
    blocklist: Sequence[str] = (),
    bank: str | Path | None = None,
    ascii_only: bool = False,
    words_only: bool = False,
    limit: int | None = None,
    device: str = "auto",
    progress: bool = True,
    executor: Executor = evaluate_here,
) -> dict[str, Any]:
    """Run (or resume) the Table 1 evaluation over the images of `source`, writing into `out`.

    `generator` is a name for `load_generator` ("shapes", a diffusers hub id or folder) or any `TextToImage`.
    `random_baseline` adds the floor row: random allowed tokens (seed `config.seed` + the image's index).
    `executor` runs the images (default: here, one after another); this process alone writes.
    Returns the summary (also in out/summary.json and out/summary.md) with `processed` (images
    finished by this call), `skipped` (finished before) and `interrupted`.
    """
    config = replace(config or PEZConfig(), progress=progress)
    generation = generation or GenerationConfig()
    config.validate()
    generation.validate()
    if baseline_phrases < 1:
        raise HardpromptError(f"the baseline needs at least one phrase (got {baseline_phrases})")
    if limit is not None and limit < 1:
        raise HardpromptError(f"limit must be at least 1 (got {limit})")
    items = read_items(source)
    settings = {
        "optimizer": _name(optimizer),
        "generator": _name(generator),
        "scorer": _name(scorer),
        "method": method_of(config).name,
        "optimizer_config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "vocabulary": {
            "blocklist": list(blocklist),
            "bank": describe(bank),
            "ascii_only": ascii_only,
            "words_only": words_only,
        },
        "generation": generation.to_dict(),
        "baseline": {"banks": [str(p) for p in baseline_banks], "phrases": baseline_phrases, "random": random_baseline},
        "items": [[item.key, str(item.image), item.caption] for item in items],
    }
    harness = Harness(out, settings)
    todo = items[:limit] if limit else items
    pending = [(index, item) for index, item in enumerate(todo) if not harness.is_done(item)]
    summary = harness.write_summary(items)
    if not pending:
        return {**summary, "processed": 0, "skipped": len(todo), "interrupted": False}
    options = {
        "optimizer": optimizer,
        "generator": generator,
        "scorer": scorer,
        "config": config,
        "generation": generation,
        "bank_phrases": [phrase for path in baseline_banks for phrase in read_lines(path)],
        "baseline_phrases": baseline_phrases,
        "random_baseline": random_baseline,
        "blocklist": blocklist,
        "bank": bank_phrases(bank),
        "ascii_only": ascii_only,
        "words_only": words_only,
        "device": device,
        "progress": progress,
    }
    processed = 0
    interrupted = False
    outcomes = executor(options, pending)
    for item, outcome in tqdm(outcomes, total=len(pending), desc="images", disable=None if progress else True):
        if outcome is None:
            interrupted = True
            break
        harness.save(item, outcome)
        processed += 1
        summary = harness.write_summary(items)
    return {**summary, "processed": processed, "skipped": len(todo) - len(pending), "interrupted": interrupted}


def _name(model: str | TextEncoder | TextToImage) -> str:
    return model if isinstance(model, str) else model.name
