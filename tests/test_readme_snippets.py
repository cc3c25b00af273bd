"""The README's Python quickstart runs as written, with tiny local models for the hub ids and local pages for the
web sources (tests do not reach the network)."""

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_the_python_quickstart_indexes_reports_failures_and_retrieves(tiny_model, tiny_model_b, fixtures, tmp_path,
                                                                      monkeypatch, capsys):
    code = _python_blocks()[0]
    assert '"https://example.com/manual.html", "policies/"' in code, "the README's sources changed: update this test"
    code = (code.replace("sentence-transformers/all-MiniLM-L6-v2", tiny_model)
                .replace("sentence-transformers/all-mpnet-base-v2", tiny_model_b)
                .replace('"https://example.com/manual.html"', '"manual.html"'))
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(fixtures / "html" / "article.html", tmp_path / "manual.html")
    shutil.copy(fixtures / "html" / "article.html", policies / "warranty.html")
    shutil.copy(fixtures / "html" / "navigation_only.html", policies / "menu.html")
    monkeypatch.chdir(tmp_path)

    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)

    printed = capsys.readouterr().out.splitlines()
    written, _, failures = printed[0].partition(" chunks written; failed sources: ")
    assert int(written) > 0
    # The page without main text is reported by name; the other two sources are indexed.
    assert "menu.html" in failures and "warranty.html" not in failures and "manual.html" not in failures
    answer = namespace["query"].run({"embedder": {"text": "what does the warranty cover?"}})
    documents = answer["retriever"]["documents"]
    assert 0 < len(documents) <= 10
    assert {Path(d.meta["source"]).name for d in documents if "source" in d.meta} <= {"manual.html", "warranty.html"}
    namespace["store"].close()
