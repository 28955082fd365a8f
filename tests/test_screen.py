import json
import random

import pytest

from hardprompt.apps.screen import ConceptScreen
from hardprompt.cli import main
from hardprompt.shapes.render import caption, random_scene

CONCEPTS = ["a red fox sleeping in a snowy forest", "a steam locomotive crossing a bridge"]
UNRELATED = ["a bowl of ramen noodles on a wooden table", "a spreadsheet of quarterly sales figures"]


def benign_prompts(count):
    """Distinct captions of random shapes scenes: a benign set that has nothing to do with the concepts."""
    rng = random.Random(0)
    prompts: dict[str, None] = {}
    while len(prompts) < count:
        prompts[caption(random_scene(rng))] = None
    return list(prompts)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def with_minilm(monkeypatch, minilm):
    monkeypatch.setattr("hardprompt.apps.common.load_text_encoder", lambda *args, **kwargs: minilm)


def test_the_screen_flags_the_concept_and_passes_unrelated_prompts(minilm):
    screen = ConceptScreen(minilm, CONCEPTS, threshold=0.5)
    verdicts = screen.check([CONCEPTS[1], *UNRELATED, CONCEPTS[0].upper()])
    assert [v.flagged for v in verdicts] == [True, False, False, True]
    assert verdicts[0].concept == CONCEPTS[1] and verdicts[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert verdicts[3].concept == CONCEPTS[0]
    assert all(v.similarity < 0.3 for v in verdicts[1:3])


@pytest.mark.parametrize("fpr", [0.01, 0.1])
def test_calibration_flags_its_false_positive_rate_of_its_own_set(minilm, fpr):
    benign = benign_prompts(200)
    screen = ConceptScreen(minilm, CONCEPTS)
    calibration = screen.calibrate(benign, fpr)
    flagged = sum(v.flagged for v in screen.check(benign))
    assert flagged == calibration.benign_flagged == round(fpr * 200)
    assert calibration.threshold == screen.threshold
    assert screen.check(CONCEPTS)[0].flagged


def test_cli_prints_json_lines_and_exits_1_when_something_is_flagged(capsys, with_minilm, tmp_path):
    benign = tmp_path / "benign.txt"
    benign.write_text("\n".join(benign_prompts(150)) + "\n")
    out = tmp_path / "verdicts.jsonl"
    code, stdout, err = run_cli(
        capsys, "screen", UNRELATED[0], CONCEPTS[0], "--concept", CONCEPTS[0], "--calibrate", benign, "--out", out
    )
    records = [json.loads(line) for line in stdout.splitlines()]
    assert code == 1 and [r["flagged"] for r in records] == [False, True]
    assert set(records[0]) == {"prompt", "concept", "similarity", "flagged"}
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert "flag 1 of 150 benign prompts" in err
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(UNRELATED) + "\n")
    code, stdout, _ = run_cli(capsys, "screen", "--file", prompts, "--concept", CONCEPTS[0], "--threshold", 0.5)
    assert code == 0 and len(stdout.splitlines()) == 2


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["a cat", "--threshold", "0.5"], "the following arguments are required: --concept"),
        (["--file", "EMPTY", "--concept", "a cat", "--threshold", "0.5"], "no prompts in"),
        (["a cat", "--concept", "a cat", "--threshold", "1.5"], "must be in [-1, 1]"),
        (["a cat", "--concept", "a cat", "--threshold", "nan"], "must be in [-1, 1]"),
        (["a cat", "--concept", "  ", "--threshold", "0.5"], "a concept is empty"),
        (["a cat", "--concept", "a cat"], "one of the arguments --threshold --calibrate is required"),
        (["a cat", "--concept", "a cat", "--threshold", "0.5", "--calibrate", "EMPTY"], "not allowed with"),
        (["a cat", "--concept", "a cat", "--calibrate", "EMPTY"], "no benign prompts in"),
        (["a cat", "--concept", "a cat", "--calibrate", "TWO"], "cannot resolve a false-positive rate of 0.01"),
        (["a cat", "--concept", "a cat", "--calibrate", "TWO", "--fpr", "1.5"], "must be in (0, 1)"),
        (["--concept", "a cat", "--threshold", "0.5"], "give either prompts or --file"),
        (["--file", "MISSING", "--concept", "a cat", "--threshold", "0.5"], "file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, with_minilm, tmp_path, argv, fragment):
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "two.txt").write_text("a dog\na house\n")
    paths = {"EMPTY": "empty.txt", "TWO": "two.txt", "MISSING": "missing.txt"}
    argv = [str(tmp_path / paths[a]) if a in paths else a for a in argv]
    try:
        code, _, err = run_cli(capsys, "screen", *argv)
    except SystemExit as usage_error:  # argparse's own errors
        code, err = usage_error.code, capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hardprompt: error:") and fragment in lines[0], err
