"""The benchmark harness end to end on the tiny CLIP: rows, table, plot; and its recovery metric."""

from __future__ import annotations

import json

from PIL import Image

from hardprompt.bench.tasks import recovered_fraction
from hardprompt.cli import main


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
