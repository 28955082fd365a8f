"""The Table 1 harness on tiny models: records, summary, contact sheets, interruption and resumption."""

import json

import pytest

from hardprompt.apps.reproduce import read_items, reproduce
from hardprompt.apps.score import reference_score
from hardprompt.cli import main
from hardprompt.errors import HardpromptError
from hardprompt.generation import GenerationConfig, ImageGenerator
from hardprompt.optim.pez import PEZConfig

PEZ = PEZConfig(prompt_len=4, steps=6, seed=0)
GENERATION = GenerationConfig(n=2, steps=2)
CLI_OPTIONS = ["--prompt-len", "4", "--steps", "6", "--n", "2", "--gen-steps", "2", "--device", "cpu", "--quiet"]


class InterruptedGenerator:
    """Generates normally, then raises KeyboardInterrupt at call number `stop_at` (as Ctrl-C would)."""

    def __init__(self, generator: ImageGenerator, stop_at: int) -> None:
        self.generator = generator
        self.name = generator.name
        self.calls = 0
        self.stop_at = stop_at

    def generate(self, prompt, config):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.generator.generate(prompt, config)


@pytest.fixture
def dataset(images, tmp_path):
    """A JSONL with three images (relative paths), two of them captioned, and a phrase bank."""
    for path in images:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    lines = [
        {"image": images[0].name, "caption": "a red square"},
        {"image": images[1].name},
        {"image": images[2].name, "caption": "a blue square"},
    ]
    source = tmp_path / "targets.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bank = tmp_path / "bank.txt"
    bank.write_text("red\ngreen field\nblue sky\noil painting\nphoto\nsquare shape\n")
    return source, bank


def test_read_items(images, tmp_path):
    items = read_items(images[0].parent)
    assert [item.image for item in items] == images and items[0].key == "00000-image0"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png"}\nnot json\n')
    with pytest.raises(HardpromptError, match=r"bad\.jsonl:2"):
        read_items(bad)
    with pytest.raises(HardpromptError, match=r"image folder or a \.jsonl"):
        read_items(tmp_path / "missing.txt")


def test_reproduce_is_resumable_after_an_interruption(dataset, tiny_clip, tiny_clip_dir, tiny_sd, tmp_path, capsys):
    source, bank = dataset
    out = tmp_path / "run"
    # Three methods for the first image (PEZ, bank, caption), then Ctrl-C in the second image's generation.
    interrupted = InterruptedGenerator(tiny_sd, stop_at=5)
    options = dict(baseline_banks=[str(bank)], progress=False, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        reproduce(source, out, tiny_clip, interrupted, tiny_clip, PEZ, GENERATION, **options)
    records = sorted((out / "records").glob("*.json"))
    assert [r.name for r in records] == ["00000-image0.json"], "only the finished image has a record"
    first_record = records[0].read_text()
    first_mtime = records[0].stat().st_mtime_ns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == 1 and [row["images"] for row in summary["rows"]] == [1, 1, 1]

    # Other settings in the same folder are refused rather than mixed.
    with pytest.raises(HardpromptError, match="other settings"):
        reproduce(source, out, tiny_clip, tiny_sd, tiny_clip, PEZConfig(prompt_len=5, steps=6), GENERATION, **options)

    # The rerun (through the CLI, same settings) skips the finished image and completes the others.
    argv = ["reproduce", str(source), "--out", str(out), "--model", str(tiny_clip_dir), "--scorer", str(tiny_clip_dir)]
    argv += ["--generator", tiny_sd.name, "--baseline-bank", str(bank), *CLI_OPTIONS]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"{out}/summary.md"
    assert records[0].read_text() == first_record and records[0].stat().st_mtime_ns == first_mtime
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == 3
    rows = {row["method"]: row for row in summary["rows"]}
    assert {m: r["images"] for m, r in rows.items()} == {"pez": 3, "bank": 3, "caption": 2}

    for record_path in sorted((out / "records").glob("*.json")):
        record = json.loads(record_path.read_text())
        assert (out / "sheets" / f"{record['key']}.png").is_file()
        for method, entry in record["methods"].items():
            assert len(entry["images"]) == 2 and len(entry["reference_scores"]) == 2
            rescored = reference_score([record["image"]], [out / p for p in entry["images"]], tiny_clip)
            assert entry["reference_score"] == pytest.approx(rescored.mean, abs=1e-5), method
            assert entry["tokens"] == tiny_clip.count_tokens(entry["prompt"])
        assert record["methods"]["pez"]["tokens"] >= 1
        assert set(record["methods"]["bank"]["prompt"].split(", ")) <= set(bank.read_text().split("\n"))

    pez_scores = [
        json.loads(p.read_text())["methods"]["pez"]["reference_score"] for p in sorted(records[0].parent.iterdir())
    ]
    assert rows["pez"]["reference_mean"] == pytest.approx(sum(pez_scores) / 3, abs=1e-9)
    markdown = (out / "summary.md").read_text()
    assert "| PEZ | 3 |" in markdown and "| caption | 2 |" in markdown
    assert f"{rows['pez']['reference_mean']:.3f} ± {rows['pez']['reference_std']:.3f}" in markdown

    # A finished run does no work again.
    again = reproduce(source, out, tiny_clip, tiny_sd, tiny_clip, PEZ, GENERATION, **options)
    assert (again["processed"], again["skipped"]) == (0, 3)


def test_reproduce_stops_when_pez_is_interrupted(images, tiny_clip, tiny_sd, tmp_path, monkeypatch):
    """Ctrl-C inside PEZ returns an interrupted result: the harness keeps finished images and stops."""
    from hardprompt.apps import reproduce as harness_module

    calls = []
    real_invert = harness_module.invert

    def invert_then_interrupt(*args, **kwargs):
        result = real_invert(*args, **kwargs)
        calls.append(result.prompt)
        result.interrupted = len(calls) == 2
        return result

    monkeypatch.setattr(harness_module, "invert", invert_then_interrupt)
    out = tmp_path / "run"
    summary = reproduce(images[0].parent, out, tiny_clip, tiny_sd, tiny_clip, PEZ, GenerationConfig(n=1, steps=1))
    assert summary["interrupted"] and (summary["processed"], summary["finished"]) == (1, 1)
    assert [p.name for p in (out / "records").iterdir()] == ["00000-image0.json"]
    assert not (out / "images" / "00001-image1").exists(), "nothing is generated for the interrupted image"


def test_reproduce_cli_bad_input(tmp_path, tiny_clip_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "no image"}\n')
    argv = ["reproduce", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_clip_dir), *CLI_OPTIONS]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jsonl:1" in err
