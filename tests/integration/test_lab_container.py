"""JupyterLab in the CPU image via `make docker-lab`, checked with the API and a real browser."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import pytest

from tests.integration.containers import ARTIFACTS, IMAGE, make, record_artifact, run
from tests.integration.lab_helpers import (
    URL_LINE,
    command_lines_holding,
    free_port,
    get_json,
    http_status,
    open_in_chromium,
    start_make_lab,
)

# Slow: each test starts JupyterLab in the CPU image (minutes).
pytestmark = [pytest.mark.container, pytest.mark.slow]


def _record(name: str, value) -> None:
    record_artifact("lab.json", name, value)


def _started_at(engine: str, name: str) -> float:
    """Return when the engine says the container started, as a Unix time."""
    text = run(
        engine,
        "inspect",
        "--format",
        '{{.State.StartedAt.Format "2006-01-02T15:04:05.000000Z07:00"}}',
        name,
    ).stdout.strip()
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def docker_lab(engine, repo_root, cpu_image):
    """`make docker-lab` on a free port, waited for until its API answers, always removed."""
    ARTIFACTS.mkdir(exist_ok=True)
    lab = start_make_lab(repo_root, "docker-lab", ARTIFACTS / "docker-lab.log", ENGINE=engine)
    name = f"{IMAGE.rsplit('/', 1)[-1]}-lab-{lab.port}"
    try:
        seconds_from_make = lab.wait_until_answering()
        answered = time.time()
        lab.name = name
        _record("answer_seconds_after_make_docker_lab", round(seconds_from_make, 2))
        _record(
            "answer_seconds_after_container_start", round(answered - _started_at(engine, name), 2)
        )
        yield lab
    finally:
        lab.kill()
        run(engine, "rm", "--force", name, check=False)


def test_docker_lab_prints_url_with_token(docker_lab):
    """The user sees one URL on 127.0.0.1 with the published port and the token."""
    urls = URL_LINE.findall(docker_lab.output())
    assert urls == [f"http://127.0.0.1:{docker_lab.port}/lab?token={docker_lab.token}"]


def test_docker_lab_token_is_in_no_command_line(docker_lab):
    """Neither the engine's command line nor the lab's inside the container holds the token."""
    assert command_lines_holding(docker_lab.token) == []


def test_docker_lab_publishes_on_localhost_only(engine, docker_lab):
    """The lab's port is published on 127.0.0.1 only, not on every interface."""
    published = run(engine, "port", docker_lab.name).stdout.split()
    assert published == ["8888/tcp", "->", f"127.0.0.1:{docker_lab.port}"]


def test_lab_api_answers_with_token_and_refuses_without(docker_lab):
    """With the token the API lists the mounted workspace; without it, or with a wrong one, 403."""
    listing = get_json(f"{docker_lab.base}/api/contents?token={docker_lab.token}")
    names = {item["name"] for item in listing["content"]}
    assert {"notebooks", "Makefile", "src"} <= names
    assert http_status(f"{docker_lab.base}/api/contents") == 403
    assert http_status(f"{docker_lab.base}/api/contents?token=not-{docker_lab.token}") == 403
    assert http_status(f"{docker_lab.base}/api/sessions") == 403
    assert http_status(f"{docker_lab.base}/lab") == 302, "the lab page redirects to the login form"


def test_container_health_check_reports_healthy(engine, docker_lab):
    """The image's HEALTHCHECK (`tfdock lab-health`) passes on the running lab."""
    result = run(engine, "healthcheck", "run", docker_lab.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    status = run(engine, "inspect", "--format", "{{.State.Health.Status}}", docker_lab.name)
    assert status.stdout.strip() == "healthy"


def test_browser_shows_the_jupyterlab_shell(docker_lab):
    """Debian's chromium, headless, opens /lab?token=... and renders the JupyterLab shell."""
    url = f"{docker_lab.base}/lab?token={docker_lab.token}"
    screenshot = ARTIFACTS / "lab-screenshot.png"
    dom, shot = open_in_chromium(url, screenshot)
    assert dom.returncode == 0, dom.stderr[-2000:]
    (ARTIFACTS / "lab-dom.html").write_text(dom.stdout)
    for marker in ("jp-LabShell", "jp-main-dock-panel", "jp-Launcher", "jp-DirListing"):
        assert marker in dom.stdout, f"{marker} is not in the rendered page"
    assert shot.returncode == 0, shot.stderr[-2000:]
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1280, 800)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is nearly blank"
    print(f"screenshot: {screenshot}")


def test_docker_lab_on_busy_port_says_one_sentence(engine, repo_root, cpu_image):
    """With PORT taken on the host, `make docker-lab` fails with one sentence, starting nothing."""
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = make(repo_root, "docker-lab", f"PORT={port}", engine=engine, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert errors == [
        f"container-run: port {port} on 127.0.0.1 is already in use (another JupyterLab?): stop "
        f"that program or choose another port, e.g. 'make docker-lab PORT={port + 1}'."
    ]
    name = f"{IMAGE.rsplit('/', 1)[-1]}-lab-{port}"
    assert run(engine, "container", "exists", name, check=False).returncode == 1


def test_ctrl_c_stops_docker_lab_at_once(engine, repo_root, cpu_image):
    """Ctrl-C on `make docker-lab` closes the lab and leaves no container behind."""
    lab = start_make_lab(
        repo_root, "docker-lab", ARTIFACTS / "docker-lab-ctrl-c.log", ENGINE=engine
    )
    name = f"{IMAGE.rsplit('/', 1)[-1]}-lab-{lab.port}"
    try:
        lab.wait_until_answering()
        pressed = time.monotonic()
        lab.interrupt()
        while http_status(f"{lab.base}/api", timeout=1) != 0:
            assert time.monotonic() - pressed < 120, "the lab still answers 120 s after Ctrl-C"
            time.sleep(0.1)
        closed = time.monotonic() - pressed
        lab.process.wait(timeout=120)
        returned = time.monotonic() - pressed
        _record("ctrl_c_lab_closed_seconds", round(closed, 2))
        _record("ctrl_c_make_returned_seconds", round(returned, 2))
        assert run(engine, "container", "exists", name, check=False).returncode == 1
    finally:
        lab.kill()
        run(engine, "rm", "--force", name, check=False)
