"""The Gradio app: image → prompt, distill, generate & compare; a front end over `hardprompt.apps`.

Every optimization streams its best prompt through the apps' progress callback and runs in the
device's queue (one at a time, a bounded number waiting). Nothing the browser sends is read as a
path on the server: images are uploads checked against `UploadLimits`, banks are chosen among the
files the server was started with, negative targets are texts.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ..apps.common import Progress, as_encoder, bank_phrases
from ..apps.distill import distill
from ..apps.generators import load_generator
from ..apps.invert import invert
from ..apps.score import load_scorer, reference_score
from ..errors import HardpromptError
from ..generation import GenerationConfig, TextToImage, compose_prompt
from ..io import atomic_save_image, looks_like_image_path, write_json
from ..models import TextEncoder
from ..optim.registry import DEFAULT_METHOD, METHODS, MethodConfig, build_config, config_fields
from ..optim.result import Result
from ..shapes import SceneObject, random_scene, render
from .live import AppCall, LiveRun, RunStops
from .uploads import UploadLimits, read_images

DEVICE_QUEUE = "device"
"""The concurrency group of everything that runs a model: one at a time."""
MAX_RESTARTS = 8
MAX_PROMPT_LEN = 64
PLOT_POINTS = 400
"""The score plot shows at most this many steps (evenly spaced)."""
NO_BANK = "none (all tokens)"
RESULT_FILE_LIFETIME = 3600.0
"""Seconds a result JSON stays downloadable on the server."""


@dataclass(frozen=True)
class UISettings:
    """How the server was started: models, bank files, and the limits of one request."""

    model: str = "shapes"
    """Image model (invert): a CLIP, or the shapes world's."""
    text_model: str = "minilm"
    """Text model (distill)."""
    generator: str = "shapes"
    scorer: str = "shapes-reference"
    device: str = "auto"
    banks: tuple[str, ...] = ()
    uploads: UploadLimits = field(default_factory=UploadLimits)
    max_steps: int = 3000
    max_seconds: float = 600.0
    """Wall-clock limit of one optimization."""
    queue_size: int = 16
    """Requests waiting for the device beyond the one running; more are refused."""

    def validate(self) -> None:
        """Raise HardpromptError on settings the server cannot run with."""
        self.uploads.validate()
        if self.max_steps < 1:
            raise HardpromptError(f"max steps must be at least 1 (got {self.max_steps})")
        if self.max_seconds <= 0:
            raise HardpromptError(f"max seconds must be positive (got {self.max_seconds})")
        if self.queue_size < 1:
            raise HardpromptError(f"the queue size must be at least 1 (got {self.queue_size})")
        for bank in self.banks:
            if not bank_phrases(bank):
                raise HardpromptError(f"bank {bank} has no phrases")


class Models:
    """The server's models, each loaded once (on first use, or all by `load_all`) and shared by the requests."""

    def __init__(self, settings: UISettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._encoders: dict[str, TextEncoder] = {}
        self._generator: TextToImage | None = None

    def _encoder(self, name: str, load: Callable[[str, str], TextEncoder]) -> TextEncoder:
        with self._lock:
            if name not in self._encoders:
                self._encoders[name] = load(name, self.settings.device)
            return self._encoders[name]

    def image_model(self) -> TextEncoder:
        return self._encoder(self.settings.model, load_scorer)  # a model with an image tower

    def text_model(self) -> TextEncoder:
        return self._encoder(self.settings.text_model, as_encoder)

    def scorer(self) -> TextEncoder:
        return self._encoder(self.settings.scorer, load_scorer)

    def generator(self) -> TextToImage:
        with self._lock:
            if self._generator is None:
                self._generator = load_generator(self.settings.generator, self.settings.device, progress=False)
            return self._generator

    def load_all(self) -> None:
        """Load every model now, so that a bad model name fails at start, not in the first request."""
        self.image_model()
        self.text_model()
        self.scorer()
        self.generator()


def example_scenes(folder: Path) -> dict[str, Path]:
    """A few rendered shapes scenes, saved in `folder`, to try the app with: label → file."""
    scenes = [
        random_scene(random.Random(0), objects=(SceneObject("star", "red", "large", "center"),), style="filled"),
        random_scene(random.Random(1), objects=(SceneObject("heart", "pink", "medium", "left"),), style="striped"),
        random_scene(
            random.Random(2),
            objects=(
                SceneObject("circle", "blue", "medium", "left"),
                SceneObject("square", "yellow", "small", "right"),
            ),
            style="outlined",
        ),
        random_scene(random.Random(3), objects=(SceneObject("triangle", "green", "large", "top"),), style="dotted"),
    ]
    paths = {}
    for index, scene in enumerate(scenes):
        path = folder / f"scene-{index}.png"
        atomic_save_image(path, render(scene, size=128))
        paths[", ".join(f"{o.color} {o.shape}" for o in scene.objects)] = path
    return paths


@dataclass
class OptimizerControls:
    """The settings widgets shared by the two optimization tabs."""

    prompt_len: gr.Slider
    steps: gr.Slider
    method: gr.Dropdown
    restarts: gr.Slider
    seed: gr.Number
    blocklist: gr.Textbox
    bank: gr.Dropdown
    negative: gr.Textbox

    def inputs(self) -> list[gr.components.Component]:
        return [
            self.prompt_len,
            self.steps,
            self.method,
            self.restarts,
            self.seed,
            self.blocklist,
            self.bank,
            self.negative,
        ]


@dataclass
class ResultPanel:
    """The outputs of an optimization tab: the prompt, its scores, the score plot, the result JSON."""

    prompt: gr.Textbox
    status: gr.Markdown
    score: gr.Textbox
    projected: gr.Textbox
    plot: gr.LinePlot
    file: gr.File

    def outputs(self) -> list[gr.components.Component]:
        return [self.prompt, self.status, self.score, self.projected, self.plot, self.file]


def history_frame(history: tuple[float, ...] | list[float]) -> pd.DataFrame:
    """The best score after each step, at most PLOT_POINTS rows (the last step always kept)."""
    stride = max(1, -(-len(history) // PLOT_POINTS))
    steps = list(range(0, len(history), stride))
    if history and steps[-1] != len(history) - 1:
        steps.append(len(history) - 1)
    return pd.DataFrame({"step": [s + 1 for s in steps], "best score": [history[s] for s in steps]})


@contextmanager
def shown_in_page() -> Iterator[None]:
    """Bad input (a HardpromptError) becomes a message in the page, and no traceback in the server's log."""
    try:
        yield
    except HardpromptError as error:
        raise gr.Error(str(error), print_exception=False) from None


def comma_list(value: str) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def negative_texts(value: str) -> list[str]:
    """Negative targets, one text per line; a file name is refused (no path is read from the browser)."""
    texts = [line.strip() for line in (value or "").splitlines() if line.strip()]
    for text in texts:
        if looks_like_image_path(text):
            raise HardpromptError(f"negative targets are texts here, not files: {text!r}")
    return texts


class HardpromptUI:
    """The web app of one server: its settings, models, stop flags and the Gradio page."""

    def __init__(self, settings: UISettings, models: Models | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.models = models or Models(settings)
        self.stops = RunStops()
        self._files = tempfile.TemporaryDirectory(prefix="hardprompt-ui-")
        self.files = Path(self._files.name)
        self.banks = self._bank_choices(settings.banks)

    @staticmethod
    def _bank_choices(banks: tuple[str, ...]) -> dict[str, str]:
        """Bank label (the file's name, numbered when two share one) → path."""
        choices: dict[str, str] = {}
        for bank in banks:
            label = Path(bank).name
            while label in choices or label == NO_BANK:
                label = f"{Path(bank).name} ({len(choices) + 1})"
            choices[label] = bank
        return choices

    # -- requests -------------------------------------------------------------------------------

    def _bank(self, label: str | None) -> str | None:
        if not label or label == NO_BANK:
            return None
        if label not in self.banks:
            raise HardpromptError(f"unknown bank {label!r}; choose one of the list")
        return self.banks[label]

    def _target_options(self, blocklist: str, bank: str | None, negative: str) -> dict[str, Any]:
        """The vocabulary and negative-target keywords of invert and distill."""
        return {"negatives": negative_texts(negative), "blocklist": comma_list(blocklist), "bank": self._bank(bank)}

    def _config(self, method: str, prompt_len: float, steps: float, restarts: float, seed: float) -> MethodConfig:
        """The method's config from the page's settings, within the server's limits."""
        if None in (method, prompt_len, steps, restarts):
            raise HardpromptError("give the method, prompt length, steps and restarts")
        if steps > self.settings.max_steps:
            raise HardpromptError(f"steps must be at most {self.settings.max_steps} on this server (got {steps})")
        if restarts > MAX_RESTARTS:
            raise HardpromptError(f"restarts must be at most {MAX_RESTARTS} on this server (got {restarts})")
        has_restarts = "restarts" in config_fields(method)
        if restarts > 1 and not has_restarts:
            raise HardpromptError(f"method {method} has no restarts; use 1")
        return build_config(
            method,
            prompt_len=int(prompt_len),
            steps=int(steps),
            restarts=int(restarts) if has_restarts else None,
            seed=int(seed or 0),
            max_seconds=self.settings.max_seconds,
            progress=False,
        )

    def _result_file(self, kind: str, result: Result) -> str:
        """The result as a JSON file to download; files older than RESULT_FILE_LIFETIME are removed."""
        now = time.time()
        for old in self.files.glob("*.json"):
            if now - old.stat().st_mtime > RESULT_FILE_LIFETIME:
                old.unlink(missing_ok=True)
        path = self.files / f"hardprompt-{kind}-{uuid.uuid4().hex[:8]}.json"
        write_json(path, result.to_dict())
        return str(path)

    def _stream(self, kind: str, request: gr.Request, call: AppCall) -> Iterator[tuple[Any, ...]]:
        """Run `call` in the device's turn and yield the result panel's values as the best prompt improves."""
        key = f"{request.session_hash}:{kind}"
        with self.stops.running(key) as stop:
            if stop.is_set():
                raise gr.Error("stopped while waiting in the queue", print_exception=False)
            with shown_in_page():
                for update in LiveRun(call, stop).updates():
                    if isinstance(update, Progress):
                        status = (
                            f"step {update.step}/{update.steps} · best score {update.best_score:.4f} "
                            f"(projected) · {update.seconds:.1f} s"
                        )
                        yield update.best_prompt, status, "", "", history_frame(update.history), None
                    else:
                        yield self._final(kind, update)

    def _final(self, kind: str, result: Result) -> tuple[Any, ...]:
        stopped = " · stopped" if result.interrupted else ""
        kind_of_score = "round-trip score" if result.hard else "soft prompt score (NOT a hard prompt)"
        status = (
            f"**{kind_of_score} {result.score:.4f}** (projected {result.projected_score:.4f}) · {result.method} · "
            f"{result.steps} steps · {result.forward_passes} forward passes · {result.seconds:.1f} s{stopped}"
        )
        file = self._result_file(kind, result)
        scores = f"{result.score:.4f}", f"{result.projected_score:.4f}"
        return result.prompt, status, *scores, history_frame(result.history), file

    def run_invert(
        self,
        files: list[str] | None,
        prompt_len: float,
        steps: float,
        method: str,
        restarts: float,
        seed: float,
        blocklist: str,
        bank: str | None,
        negative: str,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Image(s) → prompt, streamed."""
        with shown_in_page():
            images = read_images(files, self.settings.uploads)
            config = self._config(method, prompt_len, steps, restarts, seed)
            options = self._target_options(blocklist, bank, negative)
        model = self.models.image_model

        def call(on_progress):
            return invert(images, model=model(), config=config, on_progress=on_progress, **options)

        yield from self._stream("invert", request, call)

    def run_distill(
        self,
        text: str,
        ratio: float,
        prompt_len: float,
        steps: float,
        method: str,
        restarts: float,
        seed: float,
        blocklist: str,
        bank: str | None,
        negative: str,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Long prompt → a few tokens (or a ratio of its length), streamed."""
        with shown_in_page():
            config = self._config(method, prompt_len, steps, restarts, seed)
            options = self._target_options(blocklist, bank, negative)
        model = self.models.text_model

        def call(on_progress):
            return distill(
                text or "", model=model(), config=config, ratio=ratio or None, on_progress=on_progress, **options
            )

        yield from self._stream("distill", request, call)

    def run_generate(
        self, prompt: str, concat: str, template: str, files: list[str] | None, n: float, steps: float, seed: float
    ) -> tuple[list[tuple[Any, str]], str]:
        """Prompt(s) → images from the generator, each with its reference similarity to the targets (if any)."""
        with shown_in_page():
            text = compose_prompt(prompt or "", template or None, concat or None)
            targets = read_images(files, self.settings.uploads, required=False)
            config = GenerationConfig(n=int(n), steps=int(steps), seed=int(seed or 0))
            config.validate()
            images = self.models.generator().generate(text, config)
            if not targets:
                return [(image, f"seed {config.seed + i}") for i, image in enumerate(images)], f"`{text}`"
            score = reference_score(targets, images, self.models.scorer())
        gallery = [(image, f"similarity {value:.3f}") for image, value in zip(images, score.per_image, strict=True)]
        summary = f"`{text}` · mean similarity to the targets **{score.mean:.4f}** ({score.scorer})"
        return gallery, summary

    # -- the page -------------------------------------------------------------------------------

    def _optimizer_controls(self, kind: str, prompt_len: int) -> OptimizerControls:
        with gr.Accordion("settings", open=True):
            with gr.Row():
                length = gr.Slider(1, MAX_PROMPT_LEN, value=prompt_len, step=1, label="prompt length (tokens)")
                steps = gr.Slider(
                    1,
                    self.settings.max_steps,
                    value=min(300, self.settings.max_steps),
                    step=1,
                    label="steps",
                    elem_id=f"{kind}-steps",
                )
            with gr.Row():
                method = gr.Dropdown(list(METHODS), value=DEFAULT_METHOD, label="method")
                restarts = gr.Slider(1, MAX_RESTARTS, value=1, step=1, label="restarts (pez, soft)")
                seed = gr.Number(0, label="seed", precision=0)
            blocklist = gr.Textbox(label="blocklist", placeholder="comma-separated words to avoid")
            bank = gr.Dropdown([NO_BANK, *self.banks], value=NO_BANK, label="bank (only its tokens)")
            negative = gr.Textbox(label="negative text (one per line): push away from it", lines=2)
        return OptimizerControls(length, steps, method, restarts, seed, blocklist, bank, negative)

    def _image_upload(self, kind: str, label: str) -> gr.File:
        """An upload of several images, with their thumbnails, or why they are refused, below it."""
        files = gr.File(label=label, file_count="multiple", file_types=["image"], elem_id=f"{kind}-images")
        thumbnails = gr.Gallery(
            label="targets", columns=4, height=150, object_fit="contain", fit_columns=False, interactive=False
        )
        note = gr.Markdown(elem_id=f"{kind}-upload-note")
        files.change(self.preview, files, [thumbnails, note], queue=False, api_visibility="private")
        return files

    @staticmethod
    def _result_panel(kind: str) -> ResultPanel:
        prompt = gr.Textbox(label="prompt", buttons=["copy"], interactive=False, elem_id=f"{kind}-prompt")
        status = gr.Markdown(elem_id=f"{kind}-status")
        with gr.Row():
            score = gr.Textbox(label="round-trip score", interactive=False, elem_id=f"{kind}-score")
            projected = gr.Textbox(label="projected score", interactive=False, elem_id=f"{kind}-projected")
        plot = gr.LinePlot(x="step", y="best score", label="best score per step", height=220)
        file = gr.File(label="result JSON", interactive=False, elem_id=f"{kind}-file")
        return ResultPanel(prompt, status, score, projected, plot, file)

    @staticmethod
    def _run_and_stop(kind: str) -> tuple[gr.Button, gr.Button]:
        with gr.Row():
            return (
                gr.Button("Run", variant="primary", elem_id=f"{kind}-run"),
                gr.Button("Stop", variant="stop", elem_id=f"{kind}-stop"),
            )

    def _run_buttons(
        self, kind: str, run: Callable, inputs: list, panel: ResultPanel, run_button: gr.Button, stop_button: gr.Button
    ) -> None:
        """Run: arm the stop flag at once, then `run` in the device's queue; Stop: set the flag."""

        def arm(request: gr.Request) -> None:
            self.stops.arm(f"{request.session_hash}:{kind}")

        def stop(request: gr.Request) -> None:
            self.stops.stop(f"{request.session_hash}:{kind}")

        run_button.click(arm, None, None, queue=False, api_visibility="private").then(
            run,
            inputs,
            panel.outputs(),
            api_name=kind,
            concurrency_id=DEVICE_QUEUE,
            concurrency_limit=1,
            show_progress="minimal",
        )
        stop_button.click(stop, None, None, queue=False, api_name=f"stop_{kind}")

    def build(self) -> gr.Blocks:
        """The page: three tabs over the server's models."""
        s = self.settings
        examples = example_scenes(self.files)
        with gr.Blocks(title="hardprompt", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
            gr.Markdown(
                "# hardprompt\nShort, human-readable prompts by gradient-based discrete optimization (PEZ and beyond). "
                f"Image model `{s.model}` · text model `{s.text_model}` · generator `{s.generator}` · "
                f"reference scorer `{s.scorer}`. One run at a time; others wait in the queue."
            )
            with gr.Tab("Image → prompt"):
                with gr.Row():
                    with gr.Column():
                        files = self._image_upload("invert", "target image(s): several give a shared-style prompt")
                        gr.Examples(
                            [[[str(path)]] for path in examples.values()],
                            inputs=[files],
                            label="shapes scenes",
                            example_labels=list(examples),
                        )
                        run_button, stop_button = self._run_and_stop("invert")
                        controls = self._optimizer_controls("invert", prompt_len=8)
                    with gr.Column():
                        panel = self._result_panel("invert")
                        send = gr.Button("Generate images from this prompt (next tab)")
                self._run_buttons(
                    "invert", self.run_invert, [files, *controls.inputs()], panel, run_button, stop_button
                )
            with gr.Tab("Distill"):
                with gr.Row():
                    with gr.Column():
                        text = gr.Textbox(label="long prompt", lines=4, elem_id="distill-text")
                        ratio = gr.Slider(0, 1, value=0, step=0.05, label="ratio of its length (0: the prompt length)")
                        distill_run, distill_stop = self._run_and_stop("distill")
                        distill_controls = self._optimizer_controls("distill", prompt_len=8)
                    with gr.Column():
                        distill_panel = self._result_panel("distill")
                inputs = [text, ratio, *distill_controls.inputs()]
                self._run_buttons("distill", self.run_distill, inputs, distill_panel, distill_run, distill_stop)
            with gr.Tab("Generate & compare"):
                with gr.Row():
                    with gr.Column():
                        gen_prompt = gr.Textbox(label="prompt", elem_id="generate-prompt")
                        concat = gr.Textbox(label="second prompt, appended (optional)")
                        template = gr.Textbox(label="template (optional)", placeholder="a tiger in the style of {}")
                        targets = self._image_upload("generate", "target images (optional)")
                        with gr.Row():
                            n = gr.Slider(1, 8, value=4, step=1, label="images")
                            gen_steps = gr.Slider(
                                1, 100, value=GenerationConfig().steps, step=1, label="denoising steps (diffusers)"
                            )
                            gen_seed = gr.Number(0, label="seed (image i: seed + i)", precision=0)
                        generate_button = gr.Button("Generate", variant="primary", elem_id="generate-run")
                    with gr.Column():
                        gallery = gr.Gallery(label="generated", columns=4, elem_id="generate-gallery")
                        summary = gr.Markdown(elem_id="generate-summary")
                generate_button.click(
                    self.run_generate,
                    [gen_prompt, concat, template, targets, n, gen_steps, gen_seed],
                    [gallery, summary],
                    api_name="generate",
                    concurrency_id=DEVICE_QUEUE,
                    concurrency_limit=1,
                )
            send.click(
                lambda p, f: (p, f), [panel.prompt, files], [gen_prompt, targets], queue=False, api_visibility="private"
            )
            demo.unload(self.closed)
        return demo

    def preview(self, files: list[str] | None) -> tuple[list[Any], str]:
        """The uploaded images as thumbnails, or no thumbnails and why the upload is refused."""
        try:
            return read_images(files, self.settings.uploads, required=False), ""
        except HardpromptError as error:
            return [], f"**refused:** {error}"

    def closed(self, request: gr.Request) -> None:
        """A tab was closed: its runs stop."""
        self.stops.stop_session(request.session_hash)

    def launch(
        self, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True
    ) -> tuple[gr.Blocks, str]:
        """Serve the page (queue bounded, one run at a time); with `block` False, return the app and its URL."""
        demo = self.build()
        demo.queue(max_size=self.settings.queue_size, default_concurrency_limit=1)
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=self.settings.uploads.max_bytes,
            prevent_thread_lock=not block,
            quiet=not block,
            ssr_mode=False,
            mcp_server=False,
            footer_links=["api"],
        )
        return demo, url

    def close(self) -> None:
        """Remove the server's result files."""
        self._files.cleanup()
