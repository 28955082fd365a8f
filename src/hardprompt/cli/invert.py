"""`hardprompt invert IMAGE [IMAGE ...]`: image(s) → prompt; `--each`: one prompt per image of files and folders."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..apps.invert import DEFAULT_IMAGE_MODEL, invert
from ..apps.invert_each import EachInversion, FailedImage, ResultLog, find_images
from ..errors import HardpromptError
from ..io import atomic_write_text
from .common import (
    add_dtype_option,
    add_model_options,
    add_negative_options,
    add_optimizer_options,
    add_output_options,
    add_ray_options,
    add_vocabulary_options,
    chosen_models,
    optimizer_config,
    ray_options,
    report,
    save,
    stderr_note,
)

if TYPE_CHECKING:
    from ..distributed.invert_each import RayEachInversion


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("invert", help="learn a prompt for one or several images, or one per image")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="target image file(s); with --each also folders")
    add_model_options(parser, DEFAULT_IMAGE_MODEL, several=True)
    add_dtype_option(parser)
    add_optimizer_options(parser)
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: all)")
    add_vocabulary_options(parser)
    add_negative_options(parser)
    add_output_options(parser)
    each = parser.add_argument_group("one prompt per image (--each)")
    each.add_argument(
        "--each", action="store_true", help="one prompt per image; --out is then JSONL, one line per image, resumable"
    )
    each.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    each.add_argument(
        "--images-per-batch",
        type=int,
        default=None,
        help="images optimized together in one forward pass (pez; default 16 on a CPU, 64 on a GPU)",
    )
    each.add_argument("--sidecar", default=None, metavar="EXT", help="also write each prompt beside its image (.txt)")
    each.add_argument("--overwrite-sidecars", action="store_true", help="replace existing sidecar files")
    add_ray_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.each:
        return run_each(args)
    for name in ("recursive", "images_per_batch", "sidecar", "overwrite_sidecars"):
        if getattr(args, name):
            raise HardpromptError(f"--{name.replace('_', '-')} needs --each")
    if ray_options(args) is not None:
        raise HardpromptError("--ray needs --each")
    result = invert(
        args.images,
        model=chosen_models(args),
        config=optimizer_config(args, batch_size=args.batch_size),
        model_weights=args.model_weights,
        negatives=args.negative,
        negative_weight=args.negative_weight,
        blocklist=args.blocklist,
        bank=args.bank,
        ascii_only=args.ascii_only,
        words_only=args.words_only,
        device=args.device,
        dtype=args.dtype,
    )
    save(result, args.out)
    report(result, args.quiet)
    return 130 if result.interrupted else 0


def sidecar_path(image: str | Path, extension: str) -> Path:
    """The caption file beside `image`: photo.jpg → photo.txt for extension ".txt"."""
    return Path(image).with_suffix(extension)


def run_each(args: argparse.Namespace) -> int:
    """One prompt per image: JSONL lines as batches finish, a bar over images, optional sidecars.

    Locally the batches run here; with --ray, on Ray workers, and this process writes the same output.
    """
    if args.batch_size is not None:
        raise HardpromptError("--batch-size picks targets per step of one prompt; with --each every image has its own")
    if args.sidecar is not None and (not args.sidecar.startswith(".") or "/" in args.sidecar or len(args.sidecar) < 2):
        raise HardpromptError(f"--sidecar takes a file extension such as .txt (got {args.sidecar!r})")
    models = chosen_models(args)
    if len(models) > 1 or args.model_weights is not None:
        raise HardpromptError("--each learns its prompts with one --model")
    distributed = ray_options(args)
    images, not_images = find_images(args.images, recursive=args.recursive)
    config = optimizer_config(args)
    options = {
        "images_per_batch": args.images_per_batch,
        "negatives": args.negative,
        "negative_weight": args.negative_weight,
        "blocklist": args.blocklist,
        "bank": args.bank,
        "ascii_only": args.ascii_only,
        "words_only": args.words_only,
        "device": args.device,
        "dtype": args.dtype,
    }
    if distributed is None:
        runner = nullcontext(EachInversion(models[0], config, **options))
    else:
        from ..distributed.invert_each import ray_inversion

        cluster = {**distributed, "note": stderr_note(args.quiet)}
        runner = ray_inversion(models[0], config, cluster=cluster, **options)
    log = ResultLog(args.out) if args.out else None
    try:
        with runner as inversion:
            return _write_each(args, inversion, images, not_images, log)
    finally:
        if log:
            log.close()


def _write_each(
    args: argparse.Namespace,
    inversion: EachInversion | RayEachInversion,
    images: list[Path],
    not_images: int,
    log: ResultLog | None,
) -> int:
    """Plan the run, then write each image's line (and sidecar) as `inversion` returns it; the exit code."""
    plan = inversion.plan(images, done=log.done if log else ())
    sidecars = Sidecars(args.sidecar, args.overwrite_sidecars)
    if log:
        for record in log.records:
            if record["config"]["config_hash"] == inversion.config_hash:
                sidecars.write(record["image"], record["prompt"])
    note = stderr_note(args.quiet)
    if not_images:
        note(f"skipped {not_images} files that are not images (by suffix)")
    if plan.skipped:
        note(f"skipped {plan.skipped} images already done in {args.out}")
    done = failed = 0
    interrupted = False
    start = time.perf_counter()
    bar = tqdm(total=plan.total, unit="img", desc="images", disable=None if not args.quiet else True)
    try:
        for item in inversion.run(plan.tasks, keep_going=True):
            if log:
                log.append(item)
            if isinstance(item, FailedImage):
                failed += 1
                print(f"hardprompt: error: {item.error}", file=sys.stderr)
            else:
                interrupted = interrupted or item.interrupted
                done += 1
                if not item.interrupted:
                    sidecars.write(item.config["image"], item.prompt)
                print(f"{item.config['image']}\t{item.prompt}", flush=True)
                hours = (time.perf_counter() - start) / 3600
                bar.set_postfix_str(f"{done / hours:,.0f} img/h {item.prompt[:40]!r}")
            bar.update(1)
    except KeyboardInterrupt:  # outside a batch's optimization, or waiting for Ray workers
        interrupted = True
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if not args.quiet:
        stopped = " (interrupted)" if interrupted else ""
        rate = f", {done * 3600 / seconds:,.0f} images/hour" if done and seconds > 0 else ""
        print(f"invert --each: {done} done, {failed} failed in {seconds:.1f} s{rate}{stopped}", file=sys.stderr)
    sidecars.report()
    if interrupted:
        return 130
    return 2 if failed else 0


class Sidecars:
    """Caption files beside the images (`extension` None: none), existing ones kept unless `overwrite`."""

    def __init__(self, extension: str | None, overwrite: bool) -> None:
        self.extension = extension
        self.overwrite = overwrite
        self.kept: list[Path] = []

    def write(self, image: str, prompt: str) -> None:
        if self.extension is None:
            return
        path = sidecar_path(image, self.extension)
        if path.exists() and not self.overwrite:
            if path not in self.kept and path.read_text(encoding="utf-8", errors="replace").strip() != prompt:
                self.kept.append(path)
            return
        atomic_write_text(path, prompt + "\n")

    def report(self) -> None:
        """One stderr line naming the existing sidecars left alone, if any."""
        if self.kept:
            names = ", ".join(str(path) for path in self.kept[:3]) + (" ..." if len(self.kept) > 3 else "")
            print(
                f"hardprompt: left {len(self.kept)} existing sidecar files alone ({names}); "
                "--overwrite-sidecars replaces them",
                file=sys.stderr,
            )
