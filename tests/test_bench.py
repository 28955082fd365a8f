"""The benchmark harness end to end on the tiny CLIP: rows, table, plot; and its recovery metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from hardprompt.bench import TASKS, Budget, run_suite
from hardprompt.bench.peers import nanogcg_available, nanogcg_steps
from hardprompt.bench.report import markdown_table
from hardprompt.bench.tasks import recovered_fraction
from hardprompt.cli import main
from hardprompt.errors import HardpromptError


def test_recovered_fraction_counts_tokens_as_a_multiset():
    assert recovered_fraction([5, 6, 7, 8], [8, 7, 6, 5]) == 1.0
    assert recovered_fraction([5, 5, 9], [5, 6, 5, 6]) == 0.5
    assert recovered_fraction([1, 2], [3, 4]) == 0.0


def test_bench_writes_rows_table_and_plot(tiny_clip_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red bird sitting on a branch in the morning sun, detailed photo\n")
    out = tmp_path / "bench"
    budget = ["--max-forward-passes", "40", "--max-seconds", "30"]
    tasks = ["--prompts", str(prompts), "--planted-len", "4", "--planted-count", "1"]
    methods = ["--methods", "pez,random,soft", "--seeds", "0,1"]
    code = main(["bench", "--model", str(tiny_clip_dir), *methods, *budget, *tasks, "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 * 2  # (1 planted + 1 prompt) × 3 methods × 2 seeds
    assert {(row["task"], row["method"], row["seed"]) for row in rows} == {
        (task, method, seed)
        for task in ("planted", "distill")
        for method in ("pez", "random", "soft")
        for seed in (0, 1)
    }
    for row in rows:
        assert row["forward_passes"] <= 40 + 8
        assert row["hard"] == (row["method"] != "soft")
        assert row["curve"] and row["curve"][-1][1] >= row["curve"][0][1]
        assert ("recovered" in row) == (row["task"] == "planted")
    table = (tmp_path / "bench.md").read_text()
    assert "hardprompt bench --tasks planted,distill --methods pez,random,soft --seeds 0,1" in table
    assert table.count("| planted |") == 3 and table.count("| distill |") == 3
    assert "soft (not hard: upper bound)" in table
    with Image.open(tmp_path / "bench.png") as image:
        assert image.width == 2 * 560  # one panel per task
    assert "planted/planted-0 pez seed 0" in capsys.readouterr().err


def test_bench_rejects_unknown_task(tmp_path, capsys):
    assert main(["bench", "--tasks", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


# --- the shapes world and LM target strings, and the nanoGCG peer ------------------------------------


@pytest.fixture(scope="module")
def targets_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("targets") / "targets.tsv"
    path.write_text("tell me about it\tthe movie was good\n")
    return path


def test_lm_target_task_lays_out_the_chat_turn_and_measures_greedy_decoding(chat_lm_dir, targets_file):
    (instance,) = TASKS["lm-target"].build(str(chat_lm_dir), "cpu", {"targets": str(targets_file), "prompt_len": 4})
    lm = instance.peer_inputs["lm"]
    assert lm.chat_turn("tell me about it") == ("<s>user\ntell me about it", "<|endoftext|>\n<s>assistant\n")
    objective = instance.objective
    assert objective.head_ids == lm.tokenize("<s>user\ntell me about it")
    assert objective.suffix_ids == lm.tokenize("<|endoftext|>\n<s>assistant\n")
    assert instance.prompt_len == 4 and all(lm.tokenizer.decode([i]).isascii() for i in instance.vocab.allowed_ids)
    prompt = instance.vocab.allowed_ids[:4].tolist()
    ids = objective.head_ids + prompt + objective.suffix_ids
    greedy = lm.model.generate(torch.tensor([ids]), max_new_tokens=len(objective.target_ids), do_sample=False)
    said = greedy[0, len(ids) :].tolist()
    assert objective.says_target(prompt) == (said == objective.target_ids)
    objective.target_ids = said  # the model's own greedy answer is, by definition, said
    assert objective.says_target(prompt)


def test_bench_runs_the_shapes_and_lm_target_tasks_with_their_metrics(chat_lm_dir, targets_file, tmp_path):
    budget = Budget(steps=3)
    rows = run_suite(["shapes"], ["pez", "random"], [0], budget, {"scenes": 1, "prompt_len": 4})
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= row["word_recovery"] <= 1.0 and -1.0 <= row["reference_similarity"] <= 1.0
    options = {"targets": str(targets_file), "prompt_len": 4}
    rows = run_suite(["lm-target"], ["gcg", "random"], [0], budget, options, model=str(chat_lm_dir))
    assert [row["method"] for row in rows] == ["gcg", "random"]
    for row in rows:
        assert row["target_nll"] == pytest.approx(-row["score"]) and row["steps"] == 3
        assert isinstance(row["greedy_says_target"], bool)
    table = markdown_table(rows)
    assert "target_nll" in table and "greedy_says_target" in table


def test_nanogcg_step_budget():
    assert nanogcg_steps(5, None, 128) == 5
    assert nanogcg_steps(None, 1000, 128) == 7  # 7 steps of 128 candidates + 1 gradient pass
    assert nanogcg_steps(5, 300, 128) == 2
    with pytest.raises(HardpromptError, match="--steps or --max-forward-passes"):
        nanogcg_steps(None, None, 128)


@pytest.mark.skipif(not nanogcg_available(), reason="nanogcg is not installed")
def test_nanogcg_without_a_step_or_pass_budget_is_refused_before_any_model_loads(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--tasks",
            "lm-target",
            "--model",
            "./no/such/model",
            "--methods",
            "nanogcg",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "nanogcg has no time limit" in capsys.readouterr().err


@pytest.mark.skipif(not nanogcg_available(), reason="nanogcg is not installed")
def test_nanogcg_peer_optimizes_the_same_objective(chat_lm_dir, targets_file):
    """nanoGCG's own loss of its best string equals the lm-target objective's: the same problem."""
    rows = run_suite(
        ["lm-target"], ["nanogcg", "gcg"], [0], Budget(steps=2), {"targets": str(targets_file)}, str(chat_lm_dir)
    )
    peer = next(row for row in rows if row["method"] == "nanogcg")
    assert peer["steps"] == 2 and peer["hard"]
    assert peer["score"] == pytest.approx(peer["projected_score"], abs=1e-4)
    assert peer["forward_passes"] > 2 and len(peer["curve"]) == 2
    assert not torch.are_deterministic_algorithms_enabled()  # nanoGCG's global switch is put back
    assert run_suite(["planted"], ["nanogcg"], [0], Budget(steps=1), {"planted_count": 1}, "minilm") == []


def test_distill_instances_carry_their_texts_tokens_for_the_hybrids_pick(minilm, tmp_path):
    from hardprompt.bench.tasks import distill_instances

    texts = ["a cozy wooden cabin in the snow", "a red fox asleep"]
    (tmp_path / "prompts.txt").write_text("\n".join(texts) + "\n")
    instances = distill_instances("minilm", "cpu", {"prompts": str(tmp_path / "prompts.txt"), "prompt_len": 4})
    assert [i.objective.target_token_ids for i in instances] == [tuple(minilm.tokenize(t)) for t in texts]
