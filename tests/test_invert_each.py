"""One prompt per image (`invert --each`, `hardprompt.invert_each`): independence, resume, sidecars, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

import hardprompt
from hardprompt import PEZConfig
from hardprompt.apps.common import build_vocabulary
from hardprompt.apps.invert_each import EachInversion, ResultLog, content_hash, find_images, image_seed, run_hash
from hardprompt.cli import main
from hardprompt.objectives import PerTargetSimilarity
from hardprompt.optim import pez

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = dict(prompt_len=4, steps=25, progress=False)


def write_images(folder: Path, count: int, start: int = 0) -> list[Path]:
    """`count` distinct small RGB images (a colored square on a colored ground) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        image = Image.new("RGB", (40, 40), ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256))
        image.paste(((200 + 17 * i) % 256, 20, 255 - 9 * i % 256), (4 + i % 20, 6, 20 + i % 20, 30))
        path = folder / f"img{i:02d}.png"
        image.save(path)
        paths.append(path)
    return paths


def cli(*argv) -> int:
    return main([str(arg) for arg in argv])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_image_gets_the_same_prompt_alone_and_in_any_batch(tiny_clip, tmp_path):
    paths = write_images(tmp_path, 5)
    config = PEZConfig(restarts=2, **CONFIG)
    batched = list(hardprompt.invert_each(paths, model=tiny_clip, config=config, images_per_batch=5))
    pairs = list(hardprompt.invert_each(paths[::-1], model=tiny_clip, config=config, images_per_batch=2))
    alone = next(hardprompt.invert_each([paths[3]], model=tiny_clip, config=config, images_per_batch=1))
    by_image = {r.config["image"]: r for r in pairs}
    for result in batched:
        assert result.token_ids == by_image[result.config["image"]].token_ids
        assert result.history == pytest.approx(by_image[result.config["image"]].history, abs=1e-5)
    assert alone.token_ids == batched[3].token_ids
    # different images start differently: the seed comes from the content
    assert len({tuple(r.token_ids) for r in batched}) == 5


def test_batched_pez_is_pez_run_on_each_image_with_its_own_seed(tiny_clip, tmp_path):
    """The folder runner is PEZ over a batched objective, not a second optimizer."""
    paths = write_images(tmp_path, 3)
    config = PEZConfig(**CONFIG)
    results = list(hardprompt.invert_each(paths, model=tiny_clip, config=config, images_per_batch=3))
    vocab = build_vocabulary(tiny_clip)
    targets = tiny_clip.encode_images([Image.open(p).convert("RGB") for p in paths])
    objective = PerTargetSimilarity(tiny_clip, targets)
    for index, (path, result) in enumerate(zip(paths, results, strict=True)):
        seed = image_seed(0, content_hash(path))
        assert result.config["seed"] == seed and result.config["run_seed"] == 0
        single = pez.run(objective.problem(index), vocab, replace(config, seed=seed))
        assert single.token_ids == result.token_ids
        assert single.score == pytest.approx(result.score, abs=1e-5)


def test_other_methods_run_image_by_image(tiny_clip, tmp_path):
    paths = write_images(tmp_path, 2)
    config = hardprompt.optim.build_config("gcg", prompt_len=3, steps=3, search_width=8, progress=False)
    results = list(hardprompt.invert_each(paths, model=tiny_clip, config=config, images_per_batch=8))
    assert [r.method for r in results] == ["gcg", "gcg"]
    assert [r.config["image"] for r in results] == [str(p) for p in paths]


def test_folder_run_writes_jsonl_skips_non_images_and_reports_a_corrupt_one(tiny_clip_dir, tmp_path, capsys):
    folder = tmp_path / "set"
    paths = write_images(folder, 3)
    (folder / "notes.md").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    write_images(folder / "sub", 1, start=7)
    out = tmp_path / "prompts.jsonl"
    code = cli("invert", "--each", folder, "--model", tiny_clip_dir, "--prompt-len", 4, "--steps", 10, "--out", out)
    captured = capsys.readouterr()
    assert code == 2
    assert "skipped 1 files that are not images" in captured.err
    assert "broken.png" in captured.err and "Traceback" not in captured.err
    records = lines(out)
    assert [r["image"] for r in records if "error" in r] == [str(folder / "broken.png")]
    results = [r for r in records if "error" not in r]
    assert sorted(r["image"] for r in results) == sorted(map(str, paths))  # no --recursive: sub/ not visited
    for record in results:
        assert set(record) >= {"image", "prompt", "score", "projected_score", "token_ids", "steps", "config"}
        assert record["config"]["image"] == record["image"] and not record["interrupted"]
        assert len(record["config"]["content_hash"]) == 64 and record["steps"] == 10
    assert {line.split("\t")[0] for line in captured.out.splitlines()} == set(map(str, paths))
    found, skipped = find_images([folder], recursive=True)
    assert len(found) == 5 and skipped == 1


def test_rerun_skips_done_images_and_redoes_failed_ones(tiny_clip_dir, tmp_path, capsys):
    folder = tmp_path / "set"
    write_images(folder, 3)
    (folder / "late.png").write_bytes(b"garbage")
    out = tmp_path / "prompts.jsonl"
    argv = ("invert", "--each", folder, "--model", tiny_clip_dir, "--prompt-len", 4, "--steps", 8, "--out", out)
    assert cli(*argv) == 2
    first = {r["image"]: r for r in lines(out) if "error" not in r}
    write_images(tmp_path / "tmp", 1, start=9)[0].rename(folder / "late.png")  # the bad file is fixed
    capsys.readouterr()
    assert cli(*argv) == 0
    assert "skipped 3 images already done" in capsys.readouterr().err
    records = lines(out)
    assert sorted(r["image"] for r in records) == sorted(map(str, [*first, folder / "late.png"]))
    assert all("error" not in r for r in records)
    assert {r["image"]: r["prompt"] for r in records if r["image"] in first} == {
        k: v["prompt"] for k, v in first.items()
    }
    # another config is another key: nothing is skipped
    assert cli(*argv, "--seed", 1) == 0
    assert "already done" not in capsys.readouterr().err
    assert len(lines(out)) == 8


def test_sidecars_written_kept_and_overwritten(tiny_clip_dir, tmp_path, capsys):
    folder = tmp_path / "set"
    paths = write_images(folder, 2)
    (folder / "img01.txt").write_text("my own caption\n")
    argv = ("invert", "--each", folder, "--model", tiny_clip_dir, "--prompt-len", 4, "--steps", 5, "--sidecar", ".txt")
    assert cli(*argv) == 0
    out = capsys.readouterr()
    prompts = dict(line.split("\t") for line in out.out.splitlines())
    assert (folder / "img00.txt").read_text() == prompts[str(paths[0])] + "\n"
    assert (folder / "img01.txt").read_text() == "my own caption\n"
    assert "left 1 existing sidecar" in out.err and "img01.txt" in out.err
    assert cli(*argv, "--overwrite-sidecars") == 0
    assert (folder / "img01.txt").read_text() == prompts[str(paths[1])] + "\n"
    assert cli(*argv[:-2], "--sidecar", "txt") == 2
    assert "extension" in capsys.readouterr().err


def test_each_options_are_refused_without_each_and_batch_size_with_it(tiny_clip_dir, tmp_path, capsys):
    (path,) = write_images(tmp_path, 1)
    assert cli("invert", path, "--model", tiny_clip_dir, "--sidecar", ".txt") == 2
    assert "--sidecar needs --each" in capsys.readouterr().err
    assert cli("invert", "--each", path, "--model", tiny_clip_dir, "--batch-size", 1) == 2
    assert cli("invert", "--each", path, "--model", tiny_clip_dir, "--images-per-batch", 0) == 2
    assert cli("invert", "--each", tmp_path / "missing", "--model", tiny_clip_dir) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # an option error, before the model loads
        cli("invert", "--each", path, "--model", tiny_clip_dir, "--out", tmp_path)
    assert refused.value.code == 2 and "is a folder" in capsys.readouterr().err


def _start(argv: list, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hardprompt.cli", *map(str, argv)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path} after {timeout} s")


@pytest.mark.parametrize("stop", ["kill", "interrupt"])
def test_a_stopped_run_resumes_and_every_image_is_done_exactly_once(tiny_clip_dir, tmp_path, stop):
    folder = tmp_path / "set"
    paths = write_images(folder, 8)
    out = tmp_path / "prompts.jsonl"
    # each batch optimizes for 1.5 s whatever the machine's load, so the stop lands inside the second batch
    argv = ["invert", "--each", folder, "--model", tiny_clip_dir, "--prompt-len", 4, "--steps", 10**6]
    argv += ["--max-seconds", 1.5]
    argv += ["--images-per-batch", 2, "--out", out]
    process = _start(argv, tmp_path)
    _wait_for_lines(out, 2, process)
    time.sleep(0.6)  # inside the second batch's 1.5 s of steps
    process.send_signal(signal.SIGKILL if stop == "kill" else signal.SIGINT)
    _, err = process.communicate(timeout=60)
    stopped = lines(out)
    assert 2 <= len(stopped) < len(paths), "the run finished before it was stopped"
    if stop == "interrupt":
        assert process.returncode == 130 and "Traceback" not in err
        assert any(r["interrupted"] for r in stopped)  # the batch in flight keeps its best prompts
    resumed = _start(argv, tmp_path)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    finished = [r for r in stopped if not r["interrupted"]]
    assert f"skipped {len(finished)} images already done" in err
    records = lines(out)
    assert sorted(r["image"] for r in records) == sorted(map(str, paths))
    assert not any(r["interrupted"] for r in records)


def test_result_log_drops_partial_and_interrupted_lines(tmp_path):
    out = tmp_path / "log.jsonl"
    good = {"image": "a.png", "prompt": "x", "interrupted": False, "config": {"content_hash": "h", "config_hash": "c"}}
    stopped = {**good, "image": "b.png", "interrupted": True}
    out.write_text(json.dumps(good) + "\n" + json.dumps(stopped) + "\n" + '{"image": "c.png", "pro')
    log = ResultLog(out)
    log.close()
    assert log.done == {"h:c"} and log.dropped == 2
    assert lines(out) == [good]


def test_skipping_is_by_content_and_config(tiny_clip, tmp_path):
    paths = write_images(tmp_path, 2)
    inversion = EachInversion(tiny_clip, PEZConfig(**CONFIG))
    key = inversion.key(content_hash(paths[0]))
    again = inversion.plan(paths, done={key})
    other = EachInversion(tiny_clip, PEZConfig(**{**CONFIG, "steps": 26})).plan(paths, done={key})
    assert (inversion.plan(paths).total, again.skipped, again.total, other.skipped) == (2, 1, 1, 0)
    assert inversion.config_hash == run_hash(PEZConfig(**CONFIG), tiny_clip.name)  # no model needed


def test_cuda_graph_setting_changes_nothing_on_the_cpu(tiny_clip, tmp_path):
    paths = write_images(tmp_path, 2)
    plain = list(hardprompt.invert_each(paths, model=tiny_clip, config=PEZConfig(**CONFIG)))
    graph = list(hardprompt.invert_each(paths, model=tiny_clip, config=PEZConfig(cuda_graph=True, **CONFIG)))
    assert [r.token_ids for r in plain] == [r.token_ids for r in graph]
    assert plain[0].config["config_hash"] == graph[0].config["config_hash"]
