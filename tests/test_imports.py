"""The layering rules hold for the package: scripts/imports.py checks them with ast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "imports.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_the_package_keeps_its_layers() -> None:
    done = run()
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("all rules kept")
    lines = done.stdout.splitlines()
    cycle = next(line for line in lines if line.startswith("[service] service.cycle ->"))
    assert all(name in cycle for name in ("service.poll", "service.alert", "service.deliver"))


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "listener"
    for name, text in {"__init__.py": "", "models.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


BROKEN = [
    ("a stage importing the service",
     {"storage/__init__.py": "from listener.service import poll\n", "service/__init__.py": "",
      "service/poll.py": ""}, "storage -> service.poll: imports upward"),
    ("a stage importing the CLI inside a function",
     {"alerting/render.py": "def f():\n    import listener.cli.demo\n", "cli/__init__.py": "",
      "cli/demo.py": ""}, "alerting -> cli: imports upward"),
    ("a stage importing another stage",
     {"detection/storm.py": "from listener.storage import store\n", "storage/store.py": ""},
     "detection -> storage: a stage imports another stage"),
    ("a service module importing a sibling sideways",
     {"service/deliver.py": "from listener.service.alert import evaluate\n",
      "service/alert.py": ""}, "service.deliver -> service.alert: a service module imports"),
    ("a relative import sideways",
     {"service/poll.py": "from .retention import prune\n", "service/retention.py": ""},
     "service.poll -> service.retention: a service module imports"),
    ("a module in no layer",
     {"helpers.py": "from listener import models\n"}, "helpers: in no layer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_a_broken_rule_is_reported(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    done = run(str(tree(tmp_path, files)))
    assert done.returncode == 1
    assert f"BROKEN: {expected}" in done.stdout


def test_the_composition_is_allowed(tmp_path: Path) -> None:
    files = {
        "service/cycle.py": "from listener.service import alert, deliver, poll\n",
        "service/poll.py": "from listener.service.parse import Parser\n",
        "service/parse.py": "", "service/alert.py": "", "service/deliver.py": "",
    }  # fmt: skip
    done = run(str(tree(tmp_path, files)))
    assert done.returncode == 0, done.stdout
