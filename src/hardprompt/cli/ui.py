"""`hardprompt ui`: serve the web app (image → prompt, distill, generate & compare); offline by default."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ui", help="the web app: image → prompt, distill, generate & compare (Gradio)")
    parser.add_argument("--model", default="shapes", help="image model for image → prompt: a CLIP, or shapes (shapes)")
    parser.add_argument("--text-model", default="minilm", help="text model for distill (minilm)")
    parser.add_argument("--generator", default="shapes", help="diffusers pipeline, or shapes (shapes)")
    parser.add_argument("--scorer", default="shapes-reference", help="reference image model (shapes-reference)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument(
        "--bank", action="append", default=[], metavar="FILE", help="a phrase bank the page offers (repeatable)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--queue-size", type=int, default=16, help="requests that may wait for the device (16)")
    limits.add_argument("--max-steps", type=int, default=3000, help="steps of one optimization (3000)")
    limits.add_argument("--max-seconds", type=float, default=600.0, help="seconds of one optimization (600)")
    limits.add_argument("--max-images", type=int, default=16, help="images in one request (16)")
    limits.add_argument("--max-upload-mb", type=float, default=20.0, help="size of one uploaded file (20)")
    limits.add_argument("--max-pixels", type=int, default=4096 * 4096, help="pixels of one image (4096²)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..ui import require_gradio

    require_gradio()
    from ..ui.app import HardpromptUI, UISettings
    from ..ui.uploads import UploadLimits

    settings = UISettings(
        model=args.model,
        text_model=args.text_model,
        generator=args.generator,
        scorer=args.scorer,
        device=args.device,
        banks=tuple(args.bank),
        uploads=UploadLimits(
            max_images=args.max_images, max_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels
        ),
        max_steps=args.max_steps,
        max_seconds=args.max_seconds,
        queue_size=args.queue_size,
    )
    app = HardpromptUI(settings)
    print("hardprompt ui: loading models", file=sys.stderr, flush=True)
    app.models.load_all()
    try:
        app.launch(args.host, args.port, share=args.share)
    finally:
        app.close()
    return 0
