import json

import pytest
from PIL import Image

from hardprompt.apps.redteam import load_rounds, redteam, word_drops, words_to_ban
from hardprompt.cli import main
from hardprompt.objectives import FeatureSimilarity
from hardprompt.optim.pez import PEZConfig

TARGET = "a red fox sleeping in a snowy pine forest"


def quick(steps=30, prompt_len=5):
    return PEZConfig(prompt_len=prompt_len, steps=steps, progress=False)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def fox_run(minilm):
    return redteam(TARGET, model=minilm, config=quick(), rounds=3, ban_per_round=2, blocklist=["Pine"])


def test_every_round_avoids_every_word_banned_before_it(fox_run):
    assert [done.round for done in fox_run.rounds] == [0, 1, 2]
    banned_so_far = ["pine"]
    for done in fox_run.rounds:
        assert done.blocklist == banned_so_far
        assert not any(word in done.prompt.lower() for word in banned_so_far), (done.prompt, banned_so_far)
        assert done.caught_by_filter is False
        assert len(done.banned) == 2 and not set(done.banned) & set(banned_so_far)
        banned_so_far = banned_so_far + done.banned
    assert fox_run.final_blocklist == banned_so_far


def test_banned_words_are_those_whose_removal_costs_most(minilm, fox_run):
    target = minilm.encode_texts([TARGET])

    def cosine(text):
        return float(minilm.encode_texts([text]) @ target.T)

    for done in fox_run.rounds:
        pieces = done.prompt.split()
        full = cosine(done.prompt)
        drops = {}
        for piece in pieces:
            word = piece.strip(".,;:!?'\"«»()-[]").lower()
            if len(word) >= 3 and word not in done.blocklist:
                drops[word] = full - cosine(" ".join(p for p in pieces if word not in p.lower()))
        costliest = sorted((w for w in drops if drops[w] > 0), key=drops.get, reverse=True)[:2]
        assert done.banned == costliest
        assert done.score == pytest.approx(full, abs=1e-4)


def test_word_drops_remove_every_piece_with_the_word_and_bans_follow_the_score():
    weights = {"fox": 0.5, "foxes": 0.2, "snow": 0.3, "of": 0.4, "pine": 0.1, "dull": -0.2}

    def score(text):
        return sum(weights.get(piece.strip(",").lower(), 0.0) for piece in text.split())

    drops = dict(word_drops("pine of Fox, dull snow foxes «", score))
    assert list(drops) == ["pine", "of", "fox", "dull", "snow", "foxes"]  # "«" is no word
    assert drops["fox"] == pytest.approx(0.7)  # "foxes" goes too, as a ban of "fox" would remove it
    assert drops["foxes"] == pytest.approx(0.2) and drops["dull"] == pytest.approx(-0.2)
    assert words_to_ban(list(drops.items()), 2) == ["fox", "snow"]  # "of" is too short to ban as a substring
    assert words_to_ban(list(drops.items()), 9, blocklist=["SNOW"]) == ["fox", "foxes", "pine"]  # drops > 0 only
    assert words_to_ban(list(drops.items()), 2, min_length=2) == ["fox", "of"]


def test_a_round_that_bans_nothing_ends_the_run(minilm, monkeypatch):
    monkeypatch.setattr("hardprompt.apps.redteam.word_drops", lambda prompt, score: [("fox", -0.1)])
    run = redteam(TARGET, model=minilm, config=quick(steps=5), rounds=3)
    assert len(run.rounds) == 1 and run.rounds[0].banned == [] and run.final_blocklist == []
    resumed = redteam(TARGET, model=minilm, config=quick(steps=5), rounds=3, previous=run.rounds)
    assert resumed.rounds == run.rounds


def test_an_image_target_is_inverted_round_after_round(tiny_clip, images):
    run = redteam(images[0], model=tiny_clip, config=quick(steps=10, prompt_len=4), rounds=2, ban_per_round=1)
    direct = FeatureSimilarity(tiny_clip, tiny_clip.encode_images([Image.open(images[0]).convert("RGB")]))
    for done in run.rounds:
        assert done.target == str(images[0])
        assert done.score == pytest.approx(direct.score_token_ids(tiny_clip.tokenize(done.prompt)), abs=1e-5)
    if len(run.rounds) == 2:
        assert run.rounds[1].blocklist == run.rounds[0].banned
    else:
        assert not run.rounds[0].banned  # a round that bans nothing ends the run


def test_cli_writes_rounds_plot_and_blocklist_and_resumes(capsys, minilm, tmp_path, monkeypatch):
    monkeypatch.setattr("hardprompt.apps.common.load_text_encoder", lambda *args, **kwargs: minilm)
    out = tmp_path / "fox.jsonl"
    argv = ["redteam", TARGET, "--steps", 20, "--prompt-len", 4, "--ban-per-round", 1, "--out", out, "--quiet"]
    code, stdout, _ = run_cli(capsys, *argv, "--rounds", 2)
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [json.loads(line) for line in stdout.splitlines()] == lines
    assert [line["round"] for line in lines] == [0, 1]
    assert set(lines[0]) >= {"prompt", "score", "blocklist", "banned", "caught_by_filter"}
    final = (tmp_path / "fox.blocklist.txt").read_text().split()
    assert final == lines[1]["blocklist"] + lines[1]["banned"]
    assert Image.open(tmp_path / "fox.png").size[0] > 100

    code, stdout, _ = run_cli(capsys, *argv, "--rounds", 3, "--resume")
    resumed = load_rounds(out)
    assert code == 0 and len(stdout.splitlines()) == 1 and len(resumed) == 3
    assert resumed[2].blocklist == final and [r.to_dict() for r in resumed[:2]] == lines


def test_ctrl_c_keeps_the_finished_rounds(capsys, minilm, tmp_path, monkeypatch):
    monkeypatch.setattr("hardprompt.apps.common.load_text_encoder", lambda *args, **kwargs: minilm)
    evaluate = FeatureSimilarity.evaluate
    calls = []

    def interrupted_evaluate(self, prompt_embeds):
        calls.append(1)
        if len(calls) > 25:  # during the second round (20 steps each)
            raise KeyboardInterrupt
        return evaluate(self, prompt_embeds)

    monkeypatch.setattr(FeatureSimilarity, "evaluate", interrupted_evaluate)
    out = tmp_path / "fox.jsonl"
    code, _, err = run_cli(capsys, "redteam", TARGET, "--steps", 20, "--rounds", 4, "--out", out, "--quiet")
    assert code == 130 and "interrupted" in err
    assert [round_["round"] for round_ in map(json.loads, out.read_text().splitlines())] == [0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["TARGET", "--rounds", "0"], "rounds must be at least 1"),
        (["TARGET", "--ban-per-round", "0"], "ban-per-round must be at least 1"),
        (["  "], "the target text is empty"),
        (["missing.png"], "image not found"),
        (["IMAGE"], "no image encoder"),
        (["TARGET", "--resume", "--out", "OTHER"], "rounds to resume are for target"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, minilm, images, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setattr("hardprompt.apps.common.load_text_encoder", lambda *args, **kwargs: minilm)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**_round_record(), "target": "a bowl of ramen"}) + "\n")
    values = {"TARGET": TARGET, "IMAGE": str(images[0]), "OTHER": str(other), "missing.png": str(tmp_path / "no.png")}
    argv = [values.get(a, a) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "rounds.jsonl")]
    code, _, err = run_cli(capsys, "redteam", *argv, "--steps", 1, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hardprompt: error:") and fragment in lines[0], err


def _round_record():
    return {
        "round": 0,
        "prompt": "ramen",
        "score": 0.5,
        "blocklist": [],
        "banned": ["ramen"],
        "word_drops": [["ramen", 0.5]],
        "caught_by_filter": False,
        "target": TARGET,
        "model": "minilm",
        "method": "pez",
        "steps": 1,
        "seconds": 0.1,
        "forward_passes": 1,
    }
