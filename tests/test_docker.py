"""The container is not broken silently.

No Docker engine runs here, so this test does what the image does: it copies the
files the Dockerfile copies, runs its install step in a fresh virtualenv, then runs
the image's command line (ENTRYPOINT + CMD) with the image's environment, checks it
with the HEALTHCHECK command, and stops it with the STOPSIGNAL.

The install step runs offline: the fresh virtualenv sees the test environment's
packages (the dependencies and the build backend), and pip is told `--no-index
--no-deps --no-build-isolation`, so it builds and installs the copied project and
nothing else. A test never reaches a package index.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.browser import find_chromium
from tests.conftest import LocalSite
from tests.harness import query, wait_for

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def only(word: str) -> str:
    found = [rest for w, rest in instructions() if w == word]
    assert len(found) == 1, (word, found)
    return found[0]


def test_image_policy() -> None:
    assert re.match(r"python:3\.1[1-9]-slim", only("FROM"))
    assert only("USER") not in ("root", "0")
    assert json.loads(only("VOLUME")) == ["/data"]
    assert json.loads(only("ENTRYPOINT")) == ["monitor"]
    assert json.loads(only("CMD")) == ["run"]
    assert only("STOPSIGNAL") == "SIGTERM"
    assert json.loads(only("HEALTHCHECK").split("CMD", 1)[1]) == ["monitor", "health"]


def test_the_image_renders_javascript_pages() -> None:
    """Debian's Chromium and the browser extra, found where the ENV says, sandbox off."""
    runs = [rest for word, rest in instructions() if word == "RUN"]
    assert any("apt-get install" in run and " chromium" in run for run in runs)
    assert any(re.search(r"pip install [^&]*\[[^]]*\bbrowser\b", run) for run in runs)
    env = dict(kv.split("=", 1) for kv in shlex.split(only("ENV")))
    assert env["MONITOR_CHROMIUM"] == "/usr/bin/chromium"
    assert env["MONITOR_CHROMIUM_SANDBOX"] == "0"


def image_env(data: Path, watchlist: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (kv.split("=", 1) for kv in shlex.split(only("ENV"))):
        env[key] = value.replace("/data", str(data)).replace(
            "/etc/monitor/watchlist.yaml", str(watchlist)
        )
    return env


class Running:
    """The image's process: waited on while it runs, its log shown if it exits."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process, self.log = process, log

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        def check() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            return condition()

        wait_for(what, check, timeout=30)


def healthy(command: list[str], env: dict[str, str]) -> bool:
    """Whether the HEALTHCHECK command passes."""
    return subprocess.run(command, env=env, capture_output=True).returncode == 0


OFFLINE = " --no-index --no-deps --no-build-isolation --disable-pip-version-check"


def offline_venv(venv: Path) -> Path:
    """A fresh virtualenv without pip of its own that sees the test environment's
    packages after its own: the image's dependencies, pip and the build backend."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "test-environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv


JS_ONLY = """<html><body><div id="root"></div><script>
document.getElementById('root').innerHTML = '<main><p>Hong Kong requests: 12.</p></main>';
</script></body></html>"""


def checks(data: Path) -> list[tuple[str, str, int]]:
    """(watch, outcome, rendered) of every check that stored a snapshot."""
    return [
        (watch, outcome, int(rendered))
        for watch, outcome, rendered in query(
            data / "monitor.db",
            "SELECT c.watch_id, c.outcome, s.rendered FROM checks c "
            "JOIN snapshots s ON s.id = c.snapshot_id",
        )
    ]


@pytest.mark.slow
def test_install_steps_and_command_line_work(tmp_path: Path, site: LocalSite) -> None:
    context = tmp_path / "src"
    for _word, rest in (i for i in instructions() if i[0] == "COPY"):
        *sources, _dest = rest.split()
        for src in sources:
            target = context / src
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / src).is_dir():
                shutil.copytree(
                    ROOT / src, context / src, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy(ROOT / src, context / src)
    venv = offline_venv(tmp_path / "venv")
    install = next(r for w, r in instructions() if w == "RUN" and "pip install" in r)
    pip_step = install.split("&&")[0].strip()
    assert pip_step.startswith("pip install "), pip_step
    pip_step = pip_step.replace("pip ", f"{venv}/bin/python -m pip ", 1) + OFFLINE
    done = subprocess.run(pip_step, shell=True, cwd=context, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    installed = subprocess.run(
        [venv / "bin" / "python", "-c", "import monitor; print(monitor.__file__)"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert installed.startswith(str(venv)), installed  # the copied project, not ours

    site["/policy"] = "<html><body><main><p>Hong Kong requests: 12.</p></main></body></html>"
    site["/app"] = JS_ONLY
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(
        "watches:\n  - id: local\n    platform: Local\n    name: Local\n"
        f"    url: {site.url('/policy')}\n"
        "  - id: app\n    platform: Local\n    name: App\n"
        f"    url: {site.url('/app')}\n    browser: always\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    env = image_env(data, watchlist)
    command = [
        f"{venv}/bin/{word}" if i == 0 else word
        for i, word in enumerate(json.loads(only("ENTRYPOINT")) + json.loads(only("CMD")))
    ]
    health = [f"{venv}/bin/monitor", "health"]
    logs = data / "daemon.log"
    with logs.open("w") as log, subprocess.Popen(command, env=env, cwd=data, stderr=log) as daemon:
        try:
            # Docker runs the first HEALTHCHECK one --interval after the start, long after
            # the daemon has opened its store: probe once it says it has started.
            running = Running(daemon, logs)
            running.wait_for("the daemon to start", lambda: "monitor started" in logs.read_text())
            running.wait_for(
                "a fresh heartbeat (the HEALTHCHECK command)", lambda: healthy(health, env)
            )
            daemon.send_signal(getattr(signal, only("STOPSIGNAL")))
            assert daemon.wait(timeout=40) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert (data / "monitor.db").exists()
    lines = [line for line in logs.read_text().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)
    if find_chromium(env):  # `docker exec monitor monitor check`: the JavaScript page is read
        one_off = [f"{venv}/bin/monitor", "check", "--json", "app"]
        done = subprocess.run(one_off, env=env, cwd=data, capture_output=True, text=True)
        outcome = json.loads(done.stdout.splitlines()[0])["outcome"]
        assert outcome in ("new", "unchanged"), done.stderr  # the daemon may have been first
        assert ("app", "new", 1) in checks(data)  # a baseline, from a rendered snapshot


def test_compose_runs_without_an_env_file_and_its_watchlist_is_not_the_package() -> None:
    """Editing ./watchlist.yaml for Compose never edits the installed default."""
    import yaml

    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["monitor"]
    assert service["env_file"] == [{"path": "monitor.env", "required": False}]
    assert "./watchlist.yaml:/etc/monitor/watchlist.yaml:ro" in service["volumes"]
    assert not (ROOT / "watchlist.yaml").is_symlink()


def test_the_watchlist_comment_says_what_the_loader_accepts() -> None:
    text = (ROOT / "monitor/data/watchlist.yaml").read_text()
    assert "#   url       the page: an http:// or https:// URL" in text.splitlines()
