"""`hardprompt ui`: the web app served on a free port, driven by gradio_client, raw HTTP and a real browser.

The server runs the offline defaults (the shapes world and MiniLM). Runs use few steps: the shapes
model takes about 0.07 s a step on a shared CPU core.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

pytest.importorskip("gradio")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from hardprompt.cli import main as cli_main
from hardprompt.errors import HardpromptError
from hardprompt.ui.app import NO_BANK, HardpromptUI, UISettings
from hardprompt.ui.uploads import UploadLimits, read_image

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
MAX_PIXELS = 256 * 256
MAX_IMAGES = 4
BANK_PHRASES = ["a large red star", "a small blue circle", "a pink heart on a gray background"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app with the offline defaults, a bank file and small upload limits, on a free local port."""
    folder = tmp_path_factory.mktemp("ui")
    bank = folder / "shapes-bank.txt"
    bank.write_text("\n".join(BANK_PHRASES) + "\n", encoding="utf-8")
    settings = UISettings(
        device="cpu",
        banks=(str(bank),),
        uploads=UploadLimits(max_images=MAX_IMAGES, max_bytes=200_000, max_pixels=MAX_PIXELS),
        queue_size=8,
    )
    app = HardpromptUI(settings)
    app.models.load_all()
    demo, url = app.launch(port=free_port(), block=False)
    yield SimpleNamespace(app=app, demo=demo, url=url, bank=bank)
    demo.close()
    app.close()


@pytest.fixture
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def scene(server) -> Path:
    """A rendered shapes scene from the page's examples: a large red star."""
    return server.app.files / "scene-0.png"


def invert_args(files, prompt_len=6, steps=30, method="pez", restarts=1, bank=NO_BANK, negative="", blocklist=""):
    return (files, prompt_len, steps, method, restarts, 0, blocklist, bank, negative)


def distill_args(text, ratio=0.0, prompt_len=4, steps=20, bank=NO_BANK, negative=""):
    return (text, ratio, prompt_len, steps, "pez", 1, 0, "", bank, negative)


def result_json(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_invert_streams_the_best_prompt_then_returns_the_prompt_and_its_score(client, scene):
    job = client.submit(*invert_args([handle_file(str(scene))], steps=40), api_name="/invert")
    prompt, status, score, projected, plot, file = job.result(timeout=120)
    streamed = job.outputs()[:-1]
    assert streamed, "no progress was streamed before the result"
    assert all(update[1].startswith("step ") and update[0] for update in streamed)
    steps_shown = [int(update[1].split()[1].split("/")[0]) for update in streamed]
    assert steps_shown == sorted(steps_shown) and steps_shown[-1] <= 40
    assert prompt.strip()
    assert "round-trip score" in status
    record = result_json(file)
    assert record["prompt"] == prompt
    assert float(score) == pytest.approx(record["score"], abs=1e-4)
    assert float(projected) == pytest.approx(record["projected_score"], abs=1e-4)
    assert record["steps"] == 40 and record["model"] == "shapes" and not record["interrupted"]
    assert len(plot["data"]) == 40
    # the learned prompt names the scene: a red star (the shapes world's words; seed 0)
    assert {"red", "star"} & set(prompt.lower().replace(",", " ").split())


def test_invert_uses_a_bank_the_server_was_started_with(client, scene, server):
    bank = server.bank
    *_, file = client.predict(*invert_args([handle_file(str(scene))], steps=10, bank=bank.name), api_name="/invert")
    record = result_json(file)
    assert record["config"]["bank"] == str(bank)
    words = set(" ".join(BANK_PHRASES).split())
    assert set(record["prompt"].split()) <= words


def test_distill_returns_a_short_prompt(client):
    text = "a small blue circle on the left and a large red star on the right, on a white background"
    prompt, status, score, _, _, file = client.predict(*distill_args(text, prompt_len=4), api_name="/distill")
    record = result_json(file)
    assert prompt.strip() and record["prompt"] == prompt
    assert len(record["token_ids"]) <= 4 and record["config"]["text"] == text
    assert -1 <= float(score) <= 1 and "round-trip score" in status
    # a ratio of the text's length instead of a length
    *_, file = client.predict(*distill_args(text, ratio=0.25, steps=5), api_name="/distill")
    assert result_json(file)["config"]["prompt_len"] == max(
        1, round(result_json(file)["config"]["original_tokens"] / 4)
    )


def test_bad_input_gets_a_message_and_the_server_keeps_serving(client, scene, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image at all", encoding="utf-8")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (300, 300), (10, 20, 30)).save(huge)  # 90,000 pixels > 256²
    cases = [
        (invert_args([handle_file(str(text_file))]), "notes.png: not an image"),
        (invert_args([handle_file(str(huge))]), "pixels is over the limit"),
        (invert_args([handle_file(str(scene))] * (MAX_IMAGES + 1)), f"over the limit of {MAX_IMAGES}"),
        (invert_args([]), "upload at least one image"),
        (invert_args([handle_file(str(scene))], prompt_len=0), "less than minimum"),
        (invert_args([handle_file(str(scene))], negative="/etc/secret.png"), "texts here, not files"),
        (invert_args([handle_file(str(scene))], method="gcg", restarts=2), "gcg has no restarts"),
        (distill_args("   "), "the text to distill is empty"),
    ]
    for args, message in cases:
        api = "/invert" if isinstance(args[0], list) else "/distill"
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name=api)
    prompt, *_ = client.predict(*distill_args("a red star", steps=3), api_name="/distill")
    assert prompt.strip()


def test_no_server_path_is_accepted_from_the_browser(server):
    """A file the user did not upload, or a bank path typed in, is refused before anything reads it; so is a
    file over the size limit."""
    url = server.url

    def call(data: list) -> str:
        start = httpx.post(f"{url}gradio_api/call/invert", json={"data": data}, timeout=30)
        start.raise_for_status()
        event = start.json()["event_id"]
        return httpx.get(f"{url}gradio_api/call/invert/{event}", timeout=60).text

    too_large = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", b"0" * 200_001, "image/png")})
    assert too_large.status_code == 413  # refused before it is stored
    not_uploaded = {"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}
    assert "event: error" in call(list(invert_args([not_uploaded])))
    answer = call(list(invert_args(None, bank="/etc/passwd")))
    assert "event: error" in answer and "not in the list of choices" in answer


def test_upload_limits_bytes_pixels_and_decompression_bombs(tmp_path, monkeypatch):
    image = tmp_path / "image.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(image)
    assert read_image(image, UploadLimits(), "image.png").size == (64, 48)
    with pytest.raises(HardpromptError, match="bytes is over the limit"):
        read_image(image, UploadLimits(max_bytes=100), "image.png")
    with pytest.raises(HardpromptError, match="64×48 pixels is over the limit"):
        read_image(image, UploadLimits(max_pixels=64 * 47), "image.png")
    for pixels in (2000, 1000):  # 3,072 pixels: over the limit (a warning), over twice the limit (an error)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)
        with pytest.raises(HardpromptError, match="decompression bomb"):
            read_image(image, UploadLimits(), "image.png")


def test_stop_ends_the_run_and_keeps_the_best_prompt(client, scene):
    job = client.submit(*invert_args([handle_file(str(scene))], steps=3000), api_name="/invert")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.outputs(), "the run never started"
    client.predict(api_name="/stop_invert")
    prompt, status, score, _, _, file = job.result(timeout=60)
    record = result_json(file)
    assert record["interrupted"] and 0 < record["steps"] < 3000
    assert "stopped" in status and prompt == record["prompt"] and prompt.strip()
    assert float(score) == pytest.approx(record["score"], abs=1e-4)


def test_generate_and_compare_scores_generated_images_against_the_targets(client, scene):
    gallery, summary = client.predict(
        "large red star", "", "a {} in the center", [handle_file(str(scene))], 2, 1, 0, api_name="/generate"
    )
    assert len(gallery) == 2
    similarities = [float(item["caption"].split()[-1]) for item in gallery]
    assert "a large red star in the center" in summary and "mean similarity" in summary
    assert float(summary.split("**")[1]) == pytest.approx(sum(similarities) / 2, abs=1e-3)
    # the words of the scene bring the images close to it; the words of another scene do not
    _, other_summary = client.predict(
        "small blue circle on a yellow background", "", "", [handle_file(str(scene))], 2, 1, 0, api_name="/generate"
    )
    assert float(summary.split("**")[1]) > float(other_summary.split("**")[1]) + 0.2
    with pytest.raises(AppError, match="exactly once"):
        client.predict("red star", "", "no placeholder", None, 1, 1, 0, api_name="/generate")


def test_four_clients_complete_in_queue_order(server, scene):
    """Four users submit at once: one run at a time, in the order they came, none fails; each saw its place."""
    url = server.url
    clients = [Client(url, verbose=False) for _ in range(4)]
    finished: list[int] = []
    ranks: dict[int, set[int]] = {i: set() for i in range(4)}
    lock = threading.Lock()
    start = time.perf_counter()
    jobs = []

    def wait(index: int) -> None:
        job = jobs[index]
        while not job.done():
            rank = job.status().rank
            if rank is not None:
                ranks[index].add(rank)
            time.sleep(0.05)
        job.result(timeout=5)
        with lock:
            finished.append(index)

    threads = []
    for index, each in enumerate(clients):  # each watched from its submission: a fast run leaves no queue later
        jobs.append(each.submit(*invert_args([handle_file(str(scene))], steps=25), api_name="/invert"))
        threads.append(threading.Thread(target=wait, args=(index,)))
        threads[-1].start()
        time.sleep(0.3)  # a clear order of arrival
    for thread in threads:
        thread.join(timeout=300)
    wall = time.perf_counter() - start
    print(f"4 concurrent clients, 25 steps each: {wall:.1f} s wall; places seen {ranks}")
    assert finished == [0, 1, 2, 3]
    assert all(job.result()[0].strip() for job in jobs)
    assert max(ranks[3]) >= 1, "the last client was never told its place in the queue"


def test_the_server_is_local_and_sends_no_analytics(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.demo.analytics_enabled is False and not server.demo.share


def test_cli_refuses_a_bad_model_in_one_line(tmp_path, capsys):
    assert cli_main(["ui", "--model", str(tmp_path / "no-such-model"), "--port", str(free_port())]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("hardprompt: error:") and "Traceback" not in "\n".join(error)
    assert cli_main(["ui", "--queue-size", "0"]) == 2


# -- a real browser -------------------------------------------------------------------------------

browser_only = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def text_of(page, element_id: str) -> str:
    return page.locator(f"#{element_id} textarea, #{element_id} input").first.input_value()


def upload_file(page, path: Path, shown: str | None = None) -> None:
    """Upload `path` on the first tab and wait until the page shows `shown` (default: the file's name).

    A file set while the page is still mounting its components is sometimes dropped (seen under a
    loaded CPU), so the upload is tried up to three times.
    """
    for attempt in range(3):
        page.locator("#invert-images input[type=file]").set_input_files(str(path))
        try:
            page.wait_for_selector(f"text={shown or path.name}", timeout=20_000)
            return
        except Exception:
            if attempt == 2:
                raise


def open_with_scene(browser, url: str, scene: Path, steps: int, **options):
    """A new page with `scene` uploaded on the first tab and `steps` set."""
    page = browser.new_page(**options)
    page.goto(url)
    upload_file(page, scene)
    field = "#invert-steps input[type=number]"
    page.fill(field, str(steps))
    page.press(field, "Enter")
    assert page.input_value(field) == str(steps)
    return page


def wait_for_status(page, script_test: str, timeout: float = 120) -> str:
    """Wait until the first tab's status line passes `script_test` (a JavaScript expression on `s`)."""
    page.wait_for_function(
        f"() => {{ const s = document.querySelector('#invert-status')?.innerText || ''; return {script_test}; }}",
        timeout=timeout * 1000,
    )
    return page.inner_text("#invert-status")


def runs_alive() -> int:
    return sum(thread.name == "hardprompt-run" for thread in threading.enumerate())


@browser_only
def test_browser_upload_run_shows_the_prompt_and_its_score(server, browser, tmp_path):
    """Open the page; a text file renamed .png gets a message; upload a scene, Run, wait for the prompt and score.

    HARDPROMPT_UI_SCREENSHOT=docs/ui.png writes the README's screenshot there.
    """
    url = server.url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.goto(url)
    renamed = tmp_path / "notes.png"
    renamed.write_text("a text file renamed .png", encoding="utf-8")
    upload_file(page, renamed, shown="notes.png: not an image that can be read")
    page.close()
    page = open_with_scene(
        browser, url, server.app.files / "scene-2.png", 100, viewport={"width": 1280, "height": 1000}
    )
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.click("#invert-run")
    wait_for_status(page, "s.includes('round-trip score')")
    prompt, score = text_of(page, "invert-prompt"), text_of(page, "invert-score")
    assert prompt.strip()
    assert 0 < float(score) <= 1
    assert "round-trip score" in page.inner_text("#invert-status")
    shot = Path(os.environ.get("HARDPROMPT_UI_SCREENSHOT") or tmp_path / "ui.png")
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"
    page.close()


@browser_only
def test_browser_closing_the_tab_stops_its_run(server, browser, client, scene):
    """A run whose tab is closed stops: the next user does not wait for its 3,000 steps (over 3 minutes)."""
    page = open_with_scene(browser, server.url, scene, 3000)
    page.click("#invert-run")
    wait_for_status(page, "/^step \\d+\\/3000/.test(s)", timeout=60)
    assert runs_alive() == 1
    page.close()
    deadline = time.monotonic() + 30
    while runs_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs_alive() == 0, "the closed tab's run still runs"
    start = time.perf_counter()
    prompt, *_ = client.predict(*distill_args("a red star", steps=3), api_name="/distill")
    assert prompt.strip()
    assert time.perf_counter() - start < 60


@browser_only
def test_browser_stop_keeps_the_best_prompt_and_a_waiting_run_is_withdrawn(server, browser, scene):
    """Two users: the second presses Stop while waiting, then the first presses Stop while running."""
    running = open_with_scene(browser, server.url, scene, 3000)
    waiting = open_with_scene(browser, server.url, scene, 3000)
    running.click("#invert-run")
    wait_for_status(running, "/^step \\d+\\/3000/.test(s)", timeout=60)
    waiting.click("#invert-run")
    waiting.wait_for_selector("text=/queue: 1\\/1/", timeout=30_000)  # its place in the queue is shown
    waiting.click("#invert-stop")
    running.click("#invert-stop")
    status = wait_for_status(running, "s.includes('round-trip score')", timeout=60)
    assert "stopped" in status and text_of(running, "invert-prompt").strip()
    waiting.wait_for_selector("text=stopped while waiting in the queue", timeout=60_000)
    assert runs_alive() == 0
    running.close()
    waiting.close()
