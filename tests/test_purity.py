"""The pure core imports no I/O library: the domain rules run without an event loop."""

from __future__ import annotations

import json
import subprocess
import sys

PURE_MODULES = (
    "messaging.domain.authz",
    "messaging.domain.hours",
    "messaging.domain.roster",
    "messaging.domain.models",
)
IO_LIBRARIES = ("asyncio", "anyio", "asyncpg", "redis", "starlette", "uvicorn", "websockets")

SCRIPT = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {libraries!r})))
"""


def test_domain_imports_no_io_library() -> None:
    """Importing the domain in a fresh interpreter loads none of the asyncio-based libraries."""
    script = SCRIPT.format(modules=PURE_MODULES, libraries=IO_LIBRARIES)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
