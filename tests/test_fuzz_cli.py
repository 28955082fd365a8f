"""Property-based fuzzing of the command line: whatever the input, one clear outcome.

Each run calls `hardprompt.cli.main` in-process with generated numbers (nan, inf, negatives, huge),
strings (empty, whitespace, unicode, very long) and files (random bytes, empty, folders, wrong
suffixes). Every run must exit 0, 2, 130 or 143, print no traceback, end a failure with one
`hardprompt: error:` line, and leave no partial output file. Bounded for CI: a fixed seed
(derandomize), few examples, one optimization step, tiny models loaded once.
"""

import functools
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from tiny_lm import save_tiny_causal_lm

import hardprompt.apps.common
import hardprompt.cli.tune
from hardprompt.cli import main
from hardprompt.models import load_text_encoder
from hardprompt.models.causal_lm import load_causal_lm

BOUNDS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    """`examples` runs per test (all six: under a minute on a busy 2-core machine); HARDPROMPT_FUZZ_EXAMPLES=N: N."""
    return settings(BOUNDS, max_examples=int(os.environ.get("HARDPROMPT_FUZZ_EXAMPLES", examples)))


NUMBERS = st.one_of(
    st.sampled_from(["1", "2", "0.5", "0.1", "3"]),  # valid for most options: runs get past the parser
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "0", "-0.0", "1e-320", "1e308", "", " ", "abc", "1,5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
)
SMALL_INTS = st.integers(-2, 3).map(str)  # sizes that allocate memory: bad values, never huge ones
TEXTS = st.one_of(
    st.sampled_from(["", " ", "\t\n", "a cat in a hat", "🐱 猫 кот ñ", "x" * 3000, " ".join(["word"] * 200)]),
    st.text(max_size=40),
)
TABLE = ("table", b"", ".tsv")
FILE_KINDS = ["missing", "empty", "bytes", "folder", "image", "image as .txt", "text", "table"]


def make_file(folder: Path, kind: str, content: bytes, suffix: str) -> Path:
    """A file (or folder, or nothing) of the given kind at a fresh path in `folder` ending in `suffix`."""
    path = Path(tempfile.mkstemp(dir=folder, suffix=".txt" if kind == "image as .txt" else suffix)[1])
    path.unlink()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "bytes":
        path.write_bytes(content)
    elif kind == "folder":
        path.mkdir()
    elif kind in ("image", "image as .txt"):
        color = tuple((content + b"\0\0\0")[:3])
        Image.new("RGB", (8 + len(content) % 40, 8 + len(content) % 23), color).save(path, format="PNG")
    elif kind == "text":
        path.write_text(content.decode("utf-8", "replace") + "\na red square\n", encoding="utf-8")
    elif kind == "table":
        path.write_text("text\tlabel\nthe film was great fun\t1\nboring awful plot\t0\n", encoding="utf-8")
    return path


def files(suffix: str, valid: str) -> st.SearchStrategy:
    """(kind, content, suffix) for `make_file`: half of them of the `valid` kind, the rest of any kind."""
    kinds = st.one_of(st.just(valid), st.sampled_from(FILE_KINDS))
    return st.tuples(kinds, st.binary(max_size=64), st.just(suffix))


def out_path(folder: Path, kind: str, name: str) -> str:
    """Where --out points: a new file, a new nested file, an existing folder, below a file, or nothing."""
    if kind == "folder":
        (folder / name).mkdir()
    elif kind == "below a file":
        (folder / "taken").write_text("x")
        return str(folder / "taken" / name)
    elif kind == "empty":
        return ""
    return str(folder / ("new/deeper" if kind == "nested" else "") / name)


OUT_KINDS = st.sampled_from(["file", "nested", "folder", "below a file", "empty"])


def options(**strategies) -> st.SearchStrategy:
    """Up to three `--name=value` options with drawn values (more would almost always hold a bad one)."""

    @st.composite
    def draw_options(draw) -> list[str]:
        names = draw(st.lists(st.sampled_from(sorted(strategies)), max_size=3, unique=True))
        return [f"--{name.replace('_', '-')}={draw(strategies[name])}" for name in names]

    return draw_options()


OPTIMIZER_OPTIONS = dict(
    lr=NUMBERS,
    weight_decay=NUMBERS,
    max_seconds=NUMBERS,
    prompt_len=NUMBERS,
    seed=NUMBERS,
    restarts=SMALL_INTS,
    max_forward_passes=NUMBERS,
    method=st.sampled_from(["pez", "gcg", "random", "soft", "autoprompt", "fluentprompt", "nope"]),
    top_k=SMALL_INTS,
    search_width=SMALL_INTS,
    blocklist=TEXTS,
    device=st.sampled_from(["cpu", "auto", "cuda", "cuda:7", "tpu", ""]),
)


def run_and_check(capsys, argv: list[str], folder: Path) -> int:
    """Run the CLI and check the outcome: exit code, stderr, and that every output file is whole."""
    try:
        code = main(argv)
    except SystemExit as done:  # argparse's usage errors
        code = done.code
    err = capsys.readouterr().err
    event(f"exit code {code}")
    assert code in (0, 2, 130, 143), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("hardprompt: error: "), (argv, err)
    for path in folder.rglob("*"):
        assert not path.name.endswith(".tmp"), f"partial output left behind: {path}"
        if path.is_file() and path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.is_file() and path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
    return code


@pytest.fixture(scope="module")
def fuzz_lm_dir(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("fuzz-lm"), "llama")


@pytest.fixture
def cached_models(monkeypatch):
    """Each model loads once for all examples (the models are frozen; a run cannot change them)."""
    monkeypatch.setattr(hardprompt.apps.common, "load_text_encoder", functools.cache(load_text_encoder))
    monkeypatch.setattr(hardprompt.cli.tune, "load_causal_lm", functools.cache(load_causal_lm))


def fresh_folder(tmp_path: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path))


@fuzz(25)
@given(
    text=TEXTS, out=OUT_KINDS, bank=st.none() | files(".txt", "text"), extra=options(**OPTIMIZER_OPTIONS, ratio=NUMBERS)
)
def test_fuzz_distill(capsys, cached_models, tiny_clip_dir, tmp_path, text, out, bank, extra):
    folder = fresh_folder(tmp_path)
    argv = ["distill", text, "--model", str(tiny_clip_dir), "--steps", "1", "--quiet", "--device", "cpu", *extra]
    argv += ["--out", out_path(folder, out, "out.json")]
    if bank is not None:
        argv += ["--bank", str(make_file(folder, *bank))]
    run_and_check(capsys, argv, folder)


@fuzz(25)
@given(
    images=st.lists(files(".png", "image"), min_size=1, max_size=3),
    negative=st.none() | st.one_of(TEXTS.map(lambda t: ("text", t)), files(".jpg", "image").map(lambda f: ("file", f))),
    out=OUT_KINDS,
    extra=options(**OPTIMIZER_OPTIONS, negative_weight=NUMBERS, batch_size=NUMBERS),
)
def test_fuzz_invert(capsys, cached_models, tiny_clip_dir, tmp_path, images, negative, out, extra):
    folder = fresh_folder(tmp_path)
    paths = [str(make_file(folder, *image)) for image in images]
    argv = ["invert", *paths, "--model", str(tiny_clip_dir), "--steps", "1", "--quiet", "--device", "cpu", *extra]
    argv += ["--out", out_path(folder, out, "out.json")]
    if negative is not None:
        kind, value = negative
        argv += [f"--negative={value if kind == 'text' else make_file(folder, *value)}"]
    run_and_check(capsys, argv, folder)


@fuzz(25)
@given(
    train=st.one_of(st.just(TABLE), files(".tsv", "table")),  # four inputs: each mostly valid
    valid=st.one_of(st.just(TABLE), files(".tsv", "table")),
    verbalizer=st.one_of(st.just("0:bad,1:good"), st.just("1:good,0:bad"), TEXTS),
    template=st.one_of(st.just("{input} It was {mask}"), st.just("{mask}: {input}"), TEXTS),
    out=OUT_KINDS,
    extra=options(
        fluency=NUMBERS,
        lr=NUMBERS,
        weight_decay=NUMBERS,
        max_seconds=NUMBERS,
        prompt_len=NUMBERS,
        shots=NUMBERS,
        seeds=st.one_of(NUMBERS, TEXTS),
        batch_size=NUMBERS,
        holdout_every=NUMBERS,
        valid_limit=NUMBERS,
        method=st.sampled_from(["pez", "empty", "gcg", "soft", "fluentprompt", "nope"]),
    ),
)
def test_fuzz_tune(capsys, cached_models, fuzz_lm_dir, tmp_path, train, valid, verbalizer, template, out, extra):
    folder = fresh_folder(tmp_path)
    argv = ["tune", "--model", str(fuzz_lm_dir), "--train", str(make_file(folder, *train))]
    argv += ["--valid", str(make_file(folder, *valid)), f"--verbalizer={verbalizer}", f"--template={template}"]
    argv += ["--steps", "1", "--quiet", "--device", "cpu", *extra, "--out", out_path(folder, out, "out.json")]
    run_and_check(capsys, argv, folder)


@fuzz(25)
@given(
    prompt=TEXTS,
    target=st.none() | files(".png", "image"),
    out=st.sampled_from(["file", "nested", "folder", "a file", "empty"]),
    extra=options(
        guidance=NUMBERS,
        seed=NUMBERS,
        size=NUMBERS,
        n=SMALL_INTS,
        gen_batch_size=SMALL_INTS,
        template=TEXTS,
        concat=TEXTS,
        negative_prompt=TEXTS,
    ),
)
def test_fuzz_generate(capsys, tmp_path, prompt, target, out, extra):
    folder = fresh_folder(tmp_path)
    destination = {"a file": folder / "taken.png", "empty": "", "folder": folder}.get(out, folder / "new" / "gen")
    if out == "a file":
        destination.write_text("x")
    argv = ["generate", prompt, "--model", "shapes", "--quiet", "--out", str(destination), *extra]
    if target is not None:
        argv += ["--target", str(make_file(folder, *target))]
    if run_and_check(capsys, argv, folder) == 0:
        record = json.loads((Path(destination) / "generation.json").read_text())
        assert all(Path(path).is_file() for path in [*record["images"], record["sheet"]])


@fuzz(25)
@given(
    targets=st.lists(files(".png", "image"), min_size=1, max_size=2),
    generated=st.lists(files(".jpg", "image"), min_size=1, max_size=2),
    out=OUT_KINDS,
)
def test_fuzz_score(capsys, cached_models, tiny_clip_dir, tmp_path, targets, generated, out):
    folder = fresh_folder(tmp_path)
    argv = ["score", *[str(make_file(folder, *f)) for f in targets], "--generated"]
    argv += [str(make_file(folder, *f)) for f in generated]
    argv += ["--scorer", str(tiny_clip_dir), "--device", "cpu", "--quiet", "--out", out_path(folder, out, "out.json")]
    run_and_check(capsys, argv, folder)


@fuzz(10)
@given(
    prompts=st.none() | files(".txt", "text"),
    out=st.sampled_from(["file", "nested", "folder", "below a file"]),
    extra=options(
        max_seconds=NUMBERS,
        ratio=NUMBERS,
        max_forward_passes=NUMBERS,
        seeds=st.one_of(NUMBERS, TEXTS),
        methods=st.sampled_from(["pez", "random", "nope", ""]),
        tasks=st.sampled_from(["planted", "distill", "planted,distill", "nope", ""]),
        planted_count=st.integers(-1, 1).map(str),
        planted_len=NUMBERS,
    ),
)
def test_fuzz_bench(capsys, tiny_clip_dir, tmp_path, prompts, out, extra):
    folder = fresh_folder(tmp_path)
    prefix = out_path(folder, out, "bench.jsonl").removesuffix(".jsonl")
    argv = ["bench", "--model", str(tiny_clip_dir), "--steps", "1", "--out", prefix, *extra]
    if prompts is not None:
        argv += ["--prompts", str(make_file(folder, *prompts))]
    if run_and_check(capsys, argv, folder) == 0:
        assert Path(f"{prefix}.jsonl").is_file()
