"""Hardening: every float option, --out, phone photos and edge-case images, long prompts, SIGTERM."""

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image
from tiny_lm import save_tiny_causal_lm

from hardprompt import distill
from hardprompt.apps.common import as_image
from hardprompt.apps.score import reference_score
from hardprompt.bench.harness import Budget
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.generation import GenerationConfig
from hardprompt.io import load_image, write_json
from hardprompt.objectives import FeatureSimilarity
from hardprompt.objectives.classification import LMClassification
from hardprompt.objectives.target_string import LMTargetString
from hardprompt.optim.fluentprompt import FluentPromptConfig
from hardprompt.optim.pez import PEZConfig
from hardprompt.optim.soft import SoftConfig

SRC = Path(__file__).resolve().parents[1] / "src"
ORIENTATION = 0x0112  # the EXIF tag phones set instead of rotating the pixels


def exit_code(argv) -> int:
    """main's return value, or the code of the SystemExit that argparse raises on a usage error."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as done:
        return done.code


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hardprompt: error: "), err
    return err[0]


# --- numbers ----------------------------------------------------------------------------------------

TUNE = ["tune", "--train", "t.tsv", "--valid", "v.tsv", "--verbalizer", "0:bad,1:good"]
FLOAT_OPTIONS = [
    (["distill", "a cat"], option) for option in ("--lr", "--weight-decay", "--max-seconds", "--negative-weight")
] + [
    (["distill", "a cat"], "--ratio"),
    (["invert", "x.png"], "--negative-weight"),
    (["target", "Sure"], "--lr"),
    (TUNE, "--fluency"),
    (TUNE, "--lr"),
    (TUNE, "--weight-decay"),
    (TUNE, "--max-seconds"),
    (["bench", "--out", "b"], "--max-seconds"),
    (["bench", "--out", "b"], "--ratio"),
    (["generate", "x"], "--guidance"),
    (["reproduce", "images", "--out", "r"], "--guidance"),
]


@pytest.mark.parametrize(("command", "option"), FLOAT_OPTIONS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_every_float_option_refuses_nan_and_inf(capsys, command, option, value):
    assert exit_code([*command, f"{option}={value}", "--model", "./no/such/model"]) == 2
    assert f"argument {option}: must be a finite number (got '{value}')" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "0", "must be positive"),
        ("--lr", "-0.1", "must be positive"),
        ("--weight-decay", "-1", "must not be negative"),
        ("--max-seconds", "0", "must be positive"),
        ("--lr", "fast", "not a number: 'fast'"),
    ],
)
def test_float_options_refuse_impossible_values_at_once(capsys, option, value, message):
    assert exit_code(["distill", "a cat", option, value, "--model", "./no/such/model"]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PEZConfig(lr=math.nan), "lr must be a finite number"),
        (PEZConfig(weight_decay=math.inf), "weight decay must be a finite number"),
        (PEZConfig(weight_decay=-0.5), "weight decay must not be negative"),
        (PEZConfig(max_seconds=math.nan), "max seconds must be a finite number"),
        (PEZConfig(seed=2**64), "a seed must be an integer from 0"),
        (SoftConfig(lr=math.inf), "lr must be a finite number"),
        (FluentPromptConfig(fluency_weight=math.nan), "fluency weight must be a finite number"),
        (FluentPromptConfig(noise_start=math.inf), "noise start must be a finite number"),
        (GenerationConfig(guidance=math.nan), "guidance must be a finite number"),
        (GenerationConfig(seed=-1), "a seed must be an integer from 0"),
        (Budget(seconds=math.inf), "seconds must be a finite number"),
    ],
)
def test_configs_refuse_nan_and_inf_on_the_api_path(config, message):
    with pytest.raises(HardpromptError, match=message):
        config.validate()


def test_distill_with_a_nan_learning_rate_is_a_hardprompt_error(tiny_clip):
    with pytest.raises(HardpromptError, match="lr must be a finite number"):
        distill("a cat", model=tiny_clip, config=PEZConfig(prompt_len=2, steps=1, lr=math.nan, progress=False))
    with pytest.raises(HardpromptError, match="negative weight must be a finite number"):
        distill("a cat", model=tiny_clip, negatives=["a dog"], negative_weight=math.nan)


def test_tune_refuses_a_bad_fluency_weight_before_loading_the_model(capsys, tmp_path):
    data = tmp_path / "data.tsv"
    data.write_text("text\tlabel\ngood\t1\nbad\t0\n")
    argv = ["tune", "--train", data, "--valid", data, "--verbalizer", "0:bad,1:good", "--fluency", "2"]
    assert exit_code([*argv, "--model", "./no/such/model"]) == 2
    assert "fluency weight must be in [0, 1] (got 2.0)" in one_error_line(capsys)


def test_an_error_that_echoes_a_line_break_is_still_one_line(capsys, tmp_path):
    missing = tmp_path / "two\nlines\x1e.png"
    assert exit_code(["invert", missing, "--model", "./no/such/model"]) == 2
    assert one_error_line(capsys) == f"hardprompt: error: image not found: {tmp_path}/two\\nlines\\x1e.png"
    assert exit_code(["distill", "a cat", "--out", f"{tmp_path}\n/", "--model", "./no/such/model"]) == 2
    assert "\\n/ is a folder" in one_error_line(capsys)


# --- --out ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["distill", "a cat"],
        ["invert", "x.png"],
        ["target", "Sure"],
        TUNE,
        ["score", "a.png", "--generated", "b.png"],
        ["evaluate-prompt", "p", "--valid", "v.tsv", "--verbalizer", "0:bad"],
    ],
)
def test_out_naming_a_folder_is_refused_before_any_work(capsys, tmp_path, command):
    assert exit_code([*command, "--out", tmp_path, "--model", "./no/such/model"]) == 2
    assert f"argument --out: {tmp_path} is a folder; give a file name" in one_error_line(capsys)
    below_a_file = tmp_path / "file.txt"
    below_a_file.write_text("x")
    assert exit_code([*command, "--out", below_a_file / "result.json", "--model", "./no/such/model"]) == 2
    assert f"{below_a_file} is a file, not a folder" in one_error_line(capsys)


def test_folder_outputs_refuse_a_file_and_bench_refuses_a_folder_prefix(capsys, tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    assert exit_code(["generate", "x", "--model", "shapes", "--out", existing]) == 2
    assert f"{existing} is a file; give a folder" in one_error_line(capsys)
    assert exit_code(["reproduce", "images", "--out", existing]) == 2
    assert f"{existing} is a file; give a folder" in one_error_line(capsys)
    (tmp_path / "run.jsonl").mkdir()
    assert exit_code(["bench", "--out", tmp_path / "run"]) == 2
    assert f"{tmp_path / 'run.jsonl'} is a folder" in one_error_line(capsys)
    assert exit_code(["bench", "--out", f"{tmp_path}/"]) == 2
    assert "give a file prefix" in one_error_line(capsys)


def test_a_failed_write_is_a_hardprompt_error_and_leaves_nothing(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(HardpromptError, match="cannot write"):
        write_json(tmp_path / "taken", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"], "no temporary file is left behind"


def test_undecodable_file_names_are_written_as_json_escapes(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name: a lone surrogate in Python
    write_json(tmp_path / "r.json", {"image": name})
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == {"image": name}


# --- images -----------------------------------------------------------------------------------------


def two_colors(size=(64, 32)) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, (230, 20, 20))
    image.paste((20, 20, 230), (size[0] // 2, 0, size[0], size[1]))
    return image


def phone_photo(path: Path) -> Path:
    """A 64×32 JPEG tagged orientation 6 (turn 90° clockwise to view), as phones write portraits."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    two_colors().save(path, quality=95, exif=exif)
    return path


def test_phone_photos_are_loaded_upright(tmp_path):
    image = load_image(phone_photo(tmp_path / "phone.jpg"))
    assert image.size == (32, 64), "every viewer shows it 32 wide and 64 high"
    red, blue = image.getpixel((16, 4)), image.getpixel((16, 60))
    assert red[0] > 180 > red[2] and blue[2] > 180 > blue[0], "the left (red) half is on top once turned"
    plain = tmp_path / "plain.jpg"
    two_colors().save(plain, quality=95)
    turned = Image.open(plain).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert image.tobytes() == turned.tobytes()
    assert as_image(Image.open(tmp_path / "phone.jpg")).tobytes() == turned.tobytes(), "PIL images too"


def test_score_sees_a_phone_photo_as_its_viewer_does(capsys, tiny_clip_dir, tiny_clip, tmp_path):
    phone = phone_photo(tmp_path / "phone.jpg")
    upright = tmp_path / "upright.png"
    load_image(tmp_path / "phone.jpg").save(upright)  # lossless copy of the turned pixels
    sideways = tmp_path / "sideways.png"
    Image.open(phone).convert("RGB").save(sideways)  # the pixels as stored, ignoring the tag
    assert exit_code(["score", phone, "--generated", upright, sideways, "--scorer", tiny_clip_dir]) == 0
    lines = capsys.readouterr().err.splitlines()
    scores = {Path(line.split()[1]).name: float(line.split()[0]) for line in lines}
    assert scores["upright.png"] == pytest.approx(1.0, abs=1e-5)
    assert scores["sideways.png"] < 0.9999
    assert reference_score([phone], [upright], tiny_clip).mean == pytest.approx(1.0, abs=1e-5)


def edge_images(folder: Path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Files in the modes and formats that trip image loaders, with their sizes."""
    folder.mkdir()
    made = {}

    def save(name, image, **options):
        image.save(folder / name, **options)
        made[name] = (folder / name, image.size)

    save("one-pixel.png", Image.new("RGB", (1, 1), (9, 99, 199)))
    save("sixteen-bit.png", Image.new("I;16", (20, 12), 40000))
    save("cmyk.jpg", Image.new("CMYK", (16, 24), (0, 128, 255, 10)))
    save("rgba.png", Image.new("RGBA", (24, 16), (200, 10, 10, 90)))
    palette = Image.new("P", (18, 18), 1)
    palette.putpalette([0, 0, 0, 255, 200, 0] + [0] * 762)
    save("palette.png", palette, transparency=0)
    frames = [Image.new("RGB", (20, 20), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=50, loop=0)
    save("grey.png", Image.new("L", (12, 30), 128))
    return made


def test_edge_case_images_load_as_rgb_and_invert(capsys, tiny_clip_dir, tmp_path):
    made = edge_images(tmp_path / "edge")
    for path, size in made.values():
        image = load_image(path)
        assert image.mode == "RGB" and image.size == size, path
    assert load_image(made["animated.gif"][0]).getpixel((5, 5)) == (255, 0, 0), "the first frame"
    paths = [path for path, _ in made.values()]
    argv = ["invert", *paths, "--model", tiny_clip_dir, "--steps", 1, "--prompt-len", 2, "--quiet", "--device", "cpu"]
    assert exit_code(argv) == 0, capsys.readouterr().err


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares `width` × `height` grey pixels and holds none (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10_000, 20_000])  # over Pillow's limit (89.5 M pixels): it warns; over twice: error
def test_images_over_the_pixel_limit_are_refused_in_one_line(capsys, recwarn, tiny_clip_dir, tmp_path, side):
    bomb = png_header(tmp_path / "bomb.png", side, side)
    with pytest.raises(HardpromptError, match=r"is too large: more than 89,478,485 pixels"):
        load_image(bomb)
    assert exit_code(["invert", bomb, "--model", tiny_clip_dir, "--steps", 1, "--quiet"]) == 2
    assert "too large" in one_error_line(capsys)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


# --- long prompts -----------------------------------------------------------------------------------


def test_distill_warns_once_about_a_prompt_longer_than_the_context(capsys, tiny_clip_dir, tmp_path):
    long_prompt = " ".join(["cat"] * 100)  # "cat" is one CLIP token: 100 tokens, CLIP reads 75 of them
    out = tmp_path / "long.json"
    argv = ["distill", long_prompt, "--model", tiny_clip_dir, "--prompt-len", 2, "--steps", 1, "--quiet"]
    assert exit_code([*argv, "--out", out]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    warning = f"the text has 100 tokens but {tiny_clip_dir} reads only the first 75: the last 25 are ignored"
    assert err == [f"hardprompt: warning: {warning}"]
    config = json.loads(out.read_text())["config"]
    assert config["original_tokens"] == 100 and config["truncated_tokens"] == 25
    assert exit_code(["distill", "a cat", *argv[2:], "--out", out]) == 0
    assert capsys.readouterr().err == ""
    assert json.loads(out.read_text())["config"]["truncated_tokens"] == 0


# --- SIGTERM ----------------------------------------------------------------------------------------


def test_sigterm_stops_a_real_run_keeps_the_best_prompt_and_exits_143(tiny_clip_dir, tmp_path):
    """A separate process, stopped by a real SIGTERM from outside (as kill, timeout and Slurm send)."""
    marker, out = tmp_path / "running", tmp_path / "result.json"
    code = (
        "import pathlib, sys\n"
        "from hardprompt.cli import main\n"
        "from hardprompt.objectives import FeatureSimilarity\n"
        "evaluate, calls = FeatureSimilarity.evaluate, []\n"
        "def marked(self, embeds):\n"
        "    calls.append(1)\n"
        f"    if len(calls) == 3: pathlib.Path({str(marker)!r}).write_text('optimizing')\n"
        "    return evaluate(self, embeds)\n"
        "FeatureSimilarity.evaluate = marked\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["distill", "a cat in a hat", "--model", str(tiny_clip_dir), "--prompt-len", "3", "--steps", "10000000"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--quiet", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 180
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), process.communicate(timeout=10)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    record = json.loads(out.read_text())
    assert record["interrupted"] and record["steps"] >= 2
    assert stdout.strip() == record["prompt"] != ""


@pytest.fixture
def sigterm_guard():
    """Outside hardprompt's main a SIGTERM fails the test (instead of killing pytest)."""

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM reached the test: hardprompt's main did not handle it")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    assert signal.getsignal(signal.SIGTERM) is unhandled, "main restores the handler it found"
    signal.signal(signal.SIGTERM, previous)


def sigterm_at_call(monkeypatch, cls, name: str, call: int) -> None:
    """Send this process a SIGTERM at the `call`-th call of `cls.name`."""
    original, calls = getattr(cls, name), []

    def wrapper(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("lm"), "llama")


def long_runs(tmp_path: Path, clip: Path, lm: Path, images: list[Path]) -> dict[str, tuple[list, type, str]]:
    """Each long-running command with a budget it would not finish, and the objective method to interrupt."""
    data = tmp_path / "data.tsv"
    data.write_text("text\tlabel\nthe film was great fun\t1\nboring awful plot\t0\na good story\t1\nthe worst\t0\n")
    many = ["--steps", 100000, "--prompt-len", 3, "--device", "cpu", "--quiet"]
    out = ["--out", tmp_path / "o.json"]
    tune = ["tune", "--model", lm, "--train", data, "--valid", data, "--verbalizer", "0:bad,1:good", "--shots", 1]
    reproduce = ["reproduce", images[0].parent, "--out", tmp_path / "run", "--model", clip, "--scorer", clip]
    bench = ["bench", "--tasks", "planted", "--planted-count", 1, "--planted-len", 3, "--methods", "pez"]
    return {
        "invert": (["invert", images[0], "--model", clip, *many, *out], FeatureSimilarity, "evaluate"),
        "distill": (["distill", "a cat", "--model", clip, *many, *out], FeatureSimilarity, "evaluate"),
        "target": (["target", "good", "--model", lm, *many, *out], LMTargetString, "evaluate"),
        "tune": ([*tune, *many, *out], LMClassification, "new_step"),
        "reproduce": ([*reproduce, "--generator", "shapes", "--n", 1, *many], FeatureSimilarity, "evaluate"),
        "bench": (
            [*bench, "--model", clip, "--steps", 100000, "--out", tmp_path / "bench"],
            FeatureSimilarity,
            "evaluate",
        ),
    }


@pytest.mark.parametrize("command", ["invert", "distill", "target", "tune", "reproduce", "bench"])
def test_sigterm_is_handled_like_ctrl_c_by_every_long_running_command(
    capsys, monkeypatch, sigterm_guard, tiny_clip_dir, tiny_lm_dir, images, tmp_path, command
):
    argv, cls, method = long_runs(tmp_path, tiny_clip_dir, tiny_lm_dir, images)[command]
    sigterm_at_call(monkeypatch, cls, method, call=4)
    assert exit_code(argv) == 143, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    if command in ("invert", "distill", "target"):
        record = json.loads((tmp_path / "o.json").read_text())
        assert record["interrupted"] and record["steps"] == 3
    elif command == "tune":
        assert json.loads((tmp_path / "o.json").read_text())["seeds"][0]["interrupted"]
    elif command == "reproduce":
        assert (tmp_path / "run" / "summary.json").is_file()
    else:
        assert len((tmp_path / "bench.jsonl").read_text().splitlines()) == 1


def test_sigterm_before_the_first_step_exits_143(capsys, monkeypatch, sigterm_guard, tiny_clip_dir, tmp_path):
    sigterm_at_call(monkeypatch, FeatureSimilarity, "evaluate", call=1)
    argv = ["distill", "a cat", "--model", tiny_clip_dir, "--steps", 10, "--quiet", "--out", tmp_path / "o.json"]
    assert exit_code(argv) == 143
    assert capsys.readouterr().err.strip() == "hardprompt: terminated"
    assert not (tmp_path / "o.json").exists()
