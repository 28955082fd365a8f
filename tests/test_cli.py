import json
import subprocess
import sys

import pytest

from hardprompt.cli import main
from hardprompt.objectives import FeatureSimilarity

RESULT_KEYS = {
    "prompt",
    "score",
    "projected_score",
    "token_ids",
    "tokens",
    "steps",
    "seconds",
    "model",
    "config",
    "history",
}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hardprompt: error:") and fragment in lines[0], err


def test_invert_writes_the_documented_json(capsys, tiny_clip_dir, images, tmp_path):
    out = tmp_path / "result.json"
    code, stdout, _ = run_cli(
        capsys,
        "invert",
        *images[:2],
        "--model",
        tiny_clip_dir,
        "--prompt-len",
        4,
        "--steps",
        20,
        "--quiet",
        "--device",
        "cpu",
        "--negative",
        "a blurry photo",
        "--blocklist",
        "red,Blue",
        "--out",
        out,
    )
    assert code == 0
    record = json.loads(out.read_text())
    assert set(record) >= RESULT_KEYS
    assert stdout.strip() == record["prompt"]
    assert record["steps"] == 20 and len(record["history"]) == 20
    assert len(record["token_ids"]) == len(record["tokens"])
    assert record["config"]["prompt_len"] == 4 and record["config"]["blocklist"] == ["red", "blue"]
    assert record["model"] == str(tiny_clip_dir)
    assert not {"red", "blue"} & set(record["prompt"].lower().split())


def test_distill_file_writes_one_json_line_per_prompt(capsys, tiny_clip_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat wearing a hat\n\na dog on a skateboard in the park\n")
    out = tmp_path / "results.jsonl"
    code, stdout, _ = run_cli(
        capsys,
        "distill",
        "--file",
        prompts,
        "--model",
        tiny_clip_dir,
        "--ratio",
        0.5,
        "--steps",
        10,
        "--quiet",
        "--out",
        out,
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["config"]["text"] for r in rows] == ["a cat wearing a hat", "a dog on a skateboard in the park"]
    assert [r["config"]["prompt_len"] for r in rows] == [2, 4]  # half of 5 and of 8 tokens, rounded to even
    assert stdout.splitlines() == [r["prompt"] for r in rows]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["distill", ""], "text to distill is empty"),
        (["distill", "a cat", "--prompt-len", "0"], "at least 1"),
        (["distill", "a cat", "--prompt-len", "80"], "does not fit the model's context (at most 75)"),
        (["distill", "a cat", "--ratio", "1.5"], "ratio must be in (0, 1]"),
        (["distill", "a cat", "--blocklist", "cat", "--bank", "BANK"], "leave no token"),
        (["distill", "--file", "missing.txt"], "file not found"),
        (["distill"], "give either a prompt or --file"),
        (["distill", "a cat", "--optimizer", "sgd"], "unknown optimizer 'sgd'; choose from adamw, adafactor"),
        (["distill", "a cat", "--method", "gcg", "--optimizer", "adafactor"], "method gcg has no setting --optimizer"),
        (["invert", "missing.png"], "image not found"),
        (["invert", "CORRUPT"], "cannot read image"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, tiny_clip_dir, tmp_path, argv, fragment):
    bank = tmp_path / "bank.txt"
    bank.write_text("cat\ncats\n")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not a png")
    argv = [{"BANK": str(bank), "CORRUPT": str(corrupt)}.get(a, a) for a in argv]
    if "--file" in argv:
        argv[argv.index("--file") + 1] = str(tmp_path / "missing.txt")
    code, _, err = run_cli(capsys, *argv, "--model", tiny_clip_dir, "--steps", 1, "--quiet", "--device", "cpu")
    assert_one_line_error(code, err, fragment)


def test_unknown_dtype_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "a cat", "--dtype", "float64"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and "invalid choice: 'float64'" in lines[0]


def test_unknown_models_are_one_line_errors(capsys, images):
    code, _, err = run_cli(capsys, "distill", "a cat", "--model", "./no/such/dir")
    assert_one_line_error(code, err, "model directory not found")
    code, _, err = run_cli(capsys, "invert", images[0], "--model", "nobody/no-such-clip")
    assert_one_line_error(code, err, "'nobody/no-such-clip' is not available offline")
    code, _, err = run_cli(capsys, "invert", images[0], "--model", "minilm")
    assert_one_line_error(code, err, "no image encoder")


def test_ctrl_c_prints_and_writes_the_best_prompt(capsys, monkeypatch, tiny_clip_dir, tmp_path):
    evaluate = FeatureSimilarity.evaluate
    calls = []

    def interrupted_evaluate(self, prompt_embeds):
        calls.append(1)
        if len(calls) > 12:
            raise KeyboardInterrupt
        return evaluate(self, prompt_embeds)

    monkeypatch.setattr(FeatureSimilarity, "evaluate", interrupted_evaluate)
    out = tmp_path / "result.json"
    code, stdout, _ = run_cli(
        capsys,
        "distill",
        "a cat in a hat",
        "--model",
        tiny_clip_dir,
        "--prompt-len",
        3,
        "--steps",
        1000,
        "--quiet",
        "--out",
        out,
    )
    record = json.loads(out.read_text())
    assert code == 130 and record["interrupted"] and record["steps"] == 12
    assert stdout.strip() == record["prompt"] != ""


def test_the_installed_command_exits_2_without_traceback(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "hardprompt.cli", "invert", str(tmp_path / "nope.png"), "--model", "minilm"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.strip() == f"hardprompt: error: image not found: {tmp_path / 'nope.png'}"
    usage = subprocess.run(
        [sys.executable, "-m", "hardprompt.cli", "distill", "x", "--steps", "many"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
