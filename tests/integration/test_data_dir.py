"""The data directory: importing the settings writes nothing; manage.py makes the directory and keeps
one secret key in it, so an admin login made before a restart of the agent still holds after it."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.agent_process import ROOT, AgentProcess

BASE_ENV = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
PRINT_KEY = "import dashboard.asgi; from django.conf import settings; print(settings.SECRET_KEY)"


def python(code: str, data_dir: Path, **env: str) -> str:
    """Runs `code` in a new interpreter on this checkout; its standard output."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**BASE_ENV, "AGENT_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def manage(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**BASE_ENV, "AGENT_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_settings_and_the_asgi_app_writes_nothing(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    first, second = python(PRINT_KEY, fresh), python(PRINT_KEY, fresh)
    assert not fresh.exists()
    # A key made in memory for each process: usable, and never the same twice.
    assert len(first) >= 50 and len(second) >= 50 and first != second


def test_manage_py_keeps_one_key_that_the_settings_read(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert manage(data, "agent", "--version").returncode == 0
    key_file = data / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert manage(data, "check").returncode == 0
    assert key_file.read_text() == key  # never replaced
    assert python(PRINT_KEY, data) == key
    assert sorted(path.name for path in data.iterdir()) == ["secret_key"]  # no temporary file left


def test_agent_secret_key_wins_and_is_not_written(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert manage(data, "agent", "--version", AGENT_SECRET_KEY="from-the-environment").returncode == 0
    assert data.is_dir() and not (data / "secret_key").exists()
    assert python(PRINT_KEY, data, AGENT_SECRET_KEY="from-the-environment") == "from-the-environment"


def test_an_empty_key_file_is_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "secret_key").write_text("\n")
    result = manage(data, "agent", "--version")
    assert result.returncode == 2
    assert result.stderr == f"error: {data / 'secret_key'} is empty: delete it, a new key is made on the next start\n"


def test_a_data_dir_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = manage(tmp_path / "file" / "d", "agent", "--version")
    assert result.returncode == 2
    assert result.stderr == f"error: AGENT_DATA_DIR {tmp_path / 'file' / 'd'}: Not a directory\n"


def log_in(session: requests.Session, base: str) -> None:
    """The admin's login form, as a browser fills it in (the CSRF token from the form's cookie)."""
    form = session.get(base + "/admin/login/", timeout=10)
    assert form.status_code == 200
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert match, "no CSRF token in the login form"
    answer = session.post(
        base + "/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": match.group(1), "username": "admin", "password": "secret-pw", "next": "/admin/"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/", answer.text


def logged_in(session: requests.Session, base: str) -> bool:
    answer = session.get(base + "/admin/", allow_redirects=False, timeout=10)
    assert answer.status_code in (200, 302)
    return answer.status_code == 200


def test_an_admin_login_survives_a_restart_of_the_agent(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    session = requests.Session()
    agent = AgentProcess(data).start()
    try:
        # The README's admin hint: createsuperuser with the agent's data directory.
        created = manage(
            data,
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "a@example.com",
            DJANGO_SUPERUSER_PASSWORD="secret-pw",
        )
        assert created.returncode == 0, created.stderr
        assert not logged_in(session, agent.api_url)
        log_in(session, agent.api_url)
        assert logged_in(session, agent.api_url)
    finally:
        agent.stop()
    key = (data / "secret_key").read_text()

    again = AgentProcess(data).start()
    try:
        assert logged_in(session, again.api_url)  # the session, signed with the kept key, still holds
    finally:
        again.stop()
    assert (data / "secret_key").read_text() == key
