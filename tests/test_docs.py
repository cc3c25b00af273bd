"""The user documentation: the generated reference is current, the README stays a short guide, and nothing
points at paths that exist only on the developers' machines."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
USER_FILES = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").rglob("*.md")),
              *sorted((ROOT / "examples").glob("*.yml")), *sorted((ROOT / "src").rglob("*.py"))]


def _config_reference():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_is_generated_from_the_current_configs():
    reference = _config_reference()
    assert reference.PAGE.read_text(encoding="utf-8") == reference.page(), \
        "run: python scripts/config_reference.py"
    assert "| `max_positives_per_query` |" in reference.page()
    assert "| `min_relevance` |" in reference.page()


def test_readme_is_a_short_user_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 12 * 1024
    for heading in ("## Install", "## Set-up from a clone: two commands", "## Python", "## YAML",
                    "## Command line", "## On your own documents and labels", "## Results"):
        assert heading in readme
    assert "make demo" in readme and "make test" in readme


def test_no_development_paths_or_work_log_in_user_files():
    for path in USER_FILES:
        text = path.read_text(encoding="utf-8")
        if path.name != "Makefile":  # `make models` may use a local model builder where one is installed
            assert "../shared" not in text, path
        if path.suffix == ".md" or path.name == "Makefile":
            assert not re.search(r"\b[Ss]ession \d+|today's code|the then defaults", text), path
