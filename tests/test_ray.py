"""`--ray` on a real local Ray: the workers write a local run's output; a killed worker or a stopped driver
loses no image and writes none twice."""

import json
import math
import os
import signal
import threading
from pathlib import Path

import pytest
import ray
from test_invert_each import _start, _wait_for_lines, cli, lines, write_images

import hardprompt
from hardprompt import PEZConfig
from hardprompt.cli import invert as invert_cli

STEPS = 100  # a batch of 2 lasts about a second here: long enough to stop a run inside one
IMAGES = 6


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray (2 CPUs) for the module: this process is connected, others reach it at the address."""
    ray.init(num_cpus=2, object_store_memory=100 * 2**20, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-set")
    write_images(folder, IMAGES)
    return folder


@pytest.fixture(scope="module")
def local_prompts(tiny_clip, folder) -> dict[str, tuple[str, list[int]]]:
    """image → (prompt, token ids) of a local run."""
    config = PEZConfig(prompt_len=4, steps=STEPS, progress=False)
    results = hardprompt.invert_each(sorted(folder.iterdir()), model=tiny_clip, config=config, images_per_batch=2)
    return {r.config["image"]: (r.prompt, r.token_ids) for r in results}


def each_command(folder: Path, tiny_clip_dir: Path) -> list:
    return ["invert", "--each", folder, "--model", tiny_clip_dir, "--prompt-len", 4, "--steps", STEPS]


def by_image(records: list[dict]) -> dict[str, tuple[str, list[int]]]:
    return {r["image"]: (r["prompt"], r["token_ids"]) for r in records}


def test_two_workers_write_the_local_runs_prompts_though_one_is_killed(
    ray_address, folder, tiny_clip_dir, local_prompts, tmp_path, monkeypatch
):
    notes: list[str] = []

    def note(text: str) -> None:  # kill the first worker to be ready inside its first batch
        notes.append(text)
        if text.startswith("Ray worker ready") and sum("Ray worker ready" in n for n in notes) == 1:
            pid = int(text.split("pid ")[1].split()[0])
            threading.Timer(0.1, os.kill, (pid, signal.SIGKILL)).start()

    monkeypatch.setattr(invert_cli, "stderr_note", lambda quiet: note)
    out = tmp_path / "ray.jsonl"
    command = each_command(folder, tiny_clip_dir)
    assert cli(*command, "--images-per-batch", 2, "--out", out, "--ray", "auto", "--workers", 2) == 0
    assert sum("Ray worker ready" in n for n in notes) >= 2, notes  # both workers came up
    assert any("died" in n and "next free worker" in n for n in notes), notes  # the kill hit a batch
    records = lines(out)
    assert sorted(r["image"] for r in records) == sorted(local_prompts)  # every image exactly once
    assert by_image(records) == local_prompts and not any(r["interrupted"] for r in records)


def test_a_stopped_driver_resumes_and_writes_each_image_once(
    ray_address, folder, tiny_clip_dir, local_prompts, tmp_path, capsys
):
    out = tmp_path / "prompts.jsonl"
    command = [*each_command(folder, tiny_clip_dir)]
    command += ["--images-per-batch", 2, "--out", out]
    driver = _start([*command, "--workers", 2, "--ray", ray_address], tmp_path)
    _wait_for_lines(out, 2, driver)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 143 and "(interrupted)" in err and "Traceback" not in err, err
    stopped = lines(out)
    assert 2 <= len(stopped) < IMAGES, "the run finished before it was stopped"
    assert cli(*command, "--workers", 1, "--ray", "auto") == 0  # any number of workers: the same prompts
    assert f"skipped {len(stopped)} images already done" in capsys.readouterr().err
    records = lines(out)
    assert [r["image"] for r in records[: len(stopped)]] == [r["image"] for r in stopped]
    assert len(records) == IMAGES and by_image(records) == local_prompts


def test_ray_options_are_checked(ray_address, tiny_clip_dir, folder, capsys):
    command = ["invert", "--each", folder, "--model", tiny_clip_dir]
    assert cli(*command, "--workers", 2) == 2
    assert "--workers needs --ray" in capsys.readouterr().err
    assert cli(*command, "--workers", 0, "--ray", "auto") == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert cli(*command, "--cpus-per-worker", 0, "--ray", "auto") == 2
    assert "more than 0 CPUs" in capsys.readouterr().err
    assert cli("invert", "--each", "--ray", folder, folder / "img00.png", "--model", tiny_clip_dir) == 2
    assert "put --ray after it" in capsys.readouterr().err
    assert cli("invert", folder / "img00.png", "--model", tiny_clip_dir, "--ray", "auto") == 2
    assert "--ray needs --each" in capsys.readouterr().err


def test_reproduce_on_two_workers_writes_the_local_runs_records(ray_address, images, tiny_clip_dir, tmp_path):
    command = ["reproduce", images[0].parent, "--model", tiny_clip_dir, "--scorer", tiny_clip_dir]
    command += ["--generator", "shapes", "--prompt-len", 4, "--steps", 6, "--n", 1, "--device", "cpu", "--quiet"]
    assert cli(*command, "--out", tmp_path / "local") == 0
    assert cli(*command, "--out", tmp_path / "ray", "--ray", "auto", "--workers", 2) == 0

    def records(run: str) -> dict[str, dict]:
        found = {}
        for path in (tmp_path / run / "records").iterdir():
            found[path.name] = json.loads(path.read_text())
            del found[path.name]["optimization"]["seconds"]  # the one field that differs from run to run
        return found

    local = records("local")
    assert len(local) == len(images) and _same(records("ray"), local)
    for record in local.values():
        assert (tmp_path / "ray" / "sheets" / f"{record['key']}.png").is_file()
        for entry in record["methods"].values():
            assert all((tmp_path / "ray" / path).is_file() for path in entry["images"])


def _same(a: object, b: object) -> bool:
    """Equal records, scores to float32 precision: a worker's thread count changes a sum's last bits."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_worker_that_cannot_load_reports_why_instead_of_dying():
    from hardprompt.distributed.pool import start_worker
    from hardprompt.errors import HardpromptError

    def fail():
        raise HardpromptError("model 'nope' is not available")

    served, info = start_worker(1, fail)
    assert served is None and info["error"] == "model 'nope' is not available" and info["pid"] == os.getpid()
    served, info = start_worker(1, lambda: "models")
    assert served == "models" and info["error"] is None
