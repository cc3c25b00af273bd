"""Running code in a fresh Python process (as a user's script would), without inherited Haystack settings."""

from __future__ import annotations

import os
import subprocess
import sys


def fresh_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                          timeout=300)
