"""The import contracts (pyproject.toml [tool.importlinter]) hold, and each breaks on the import it forbids.

Each case adds one forbidden import to a copy of the packages and runs lint-imports on the copy
(the work tree is never touched), so a contract weakened by an edit of its config fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

VIOLATIONS = [
    ("engine-is-django-free", "agentapi/engine/metrics.py", "import django"),
    ("engine-is-django-free", "agentapi/engine/metrics.py", "from rest_framework import status"),
    ("engine-is-django-free", "agentapi/engine/metrics.py", "from channels.layers import get_channel_layer"),
    ("engine-is-django-free", "agentapi/engine/metrics.py", "from agentapi.captures import content_type"),
    ("engine-is-django-free", "agentapi/engine/metrics.py", "import dashboard.settings"),
    ("agentapi-never-imports-dashboard", "agentapi/admin.py", "from dashboard.inspector import views"),
    ("agentapi-never-imports-dashboard", "agentapi/views.py", "from dashboard import settings"),
    ("project-over-inspector-over-agentapi", "agentapi/captures/summary.py", "from dashboard.inspector import views"),
    ("project-over-inspector-over-agentapi", "dashboard/inspector/views.py", "from dashboard import urls"),
    ("project-over-inspector-over-agentapi", "dashboard/websocket_origin.py", "from dashboard.inspector import views"),
    ("captures-serve-nothing", "agentapi/captures/summary.py", "from agentapi.runtime import current_runtime"),
    ("captures-serve-nothing", "agentapi/captures/content_views.py", "from rest_framework import serializers"),
    ("captures-serve-nothing", "agentapi/captures/summary.py", "from agentapi.peers import Peers"),
    ("runtime-fronts-the-engine", "agentapi/views.py", "from agentapi.engine.engine import RunningTunnel"),
    ("runtime-fronts-the-engine", "dashboard/inspector/views.py", "from agentapi.engine.engine import ReplayRefused"),
    ("runtime-fronts-the-engine", "agentapi/admin.py", "from agentapi.engine import engine"),
    ("workers-open-no-database", "agentapi/workers/metrics_merge.py", "from agentapi.models import Capture"),
]

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *selected], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("packages")
    for package in ("agentapi", "dashboard"):
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target)
    return target


def test_the_tree_keeps_every_contract(copy: Path) -> None:
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken" in done.stdout


@pytest.mark.parametrize(("contract", "path", "line"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(copy: Path, contract: str, path: str, line: str) -> None:
    module = copy / path
    original = module.read_text()
    module.write_text(f"{original}\n{line}\n")
    try:
        done = lint_imports(copy, contract)
    finally:
        module.write_text(original)
    assert done.returncode != 0, done.stdout
    importer = path.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> " in done.stdout, done.stdout
