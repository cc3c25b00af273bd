"""Running code in a fresh Python process (as a user's script would), without inherited Haystack settings."""

from __future__ import annotations

import os
import subprocess
import sys


def _environment(env: dict | None) -> dict:
    """This process's environment without Haystack's settings, plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    environment.update(env or {})
    return environment


def fresh_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_environment(env),
                          timeout=300)


def fresh_pythons(runs: list[tuple[str, list[str], dict | None]]) -> list[subprocess.CompletedProcess]:
    """``fresh_python`` for each (code, args, env), all started at once: most of a fresh process's time is importing
    torch and Haystack, which several processes do side by side. Each must use files of its own (a local Qdrant
    folder admits one process at a time)."""
    started = [subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_environment(env)) for code, args, env in runs]
    done = []
    for process in started:
        out, err = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done
