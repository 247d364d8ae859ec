"""The Khronos glTF-Validator (npm: gltf-validator, run by Node.js; `make setup` installs it into
.venv/node-tools) on the .glb files the tests write: `assert_valid_gltf(path, ...)` fails the test, naming each
message, when a file has an error or a warning. A machine without the validator fails (never skips) with the
command that installs it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gltf_validate.js"
MODULE = REPO / ".venv" / "node-tools" / "node_modules" / "gltf-validator"
INSTALL = "run `make setup` (scripts/ensure_node_tools.sh)"


def validate_gltf(*paths: str | Path) -> list[dict]:
    """The validator's report of each of ``paths`` (see scripts/gltf_validate.js for the fields)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"Node.js not found (the Khronos glTF-Validator runs on it): {INSTALL}")
    if not MODULE.is_dir():
        pytest.fail(f"the Khronos glTF-Validator is not installed at {MODULE}: {INSTALL}")
    proc = subprocess.run([node, str(SCRIPT), *map(str, paths)], capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, 1):
        pytest.fail(f"gltf_validate.js failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def assert_valid_gltf(*paths: str | Path, allowed: tuple[str, ...] = ()) -> list[dict]:
    """Every one of ``paths`` has no error and no warning but those whose code is in ``allowed``."""
    reports = validate_gltf(*paths)
    bad = [f"{Path(r['path']).name}: {m['code']} at {m['pointer']}: {m['message']}"
           for r in reports for m in r["messages"] if m["severity"] <= 1 and m["code"] not in allowed]
    assert not bad, f"{len(bad)} glTF-Validator error(s)/warning(s):\n" + "\n".join(bad[:20])
    return reports
