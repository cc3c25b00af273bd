import http.server
import threading
from pathlib import Path

import pytest
from haystack.dataclasses import ByteStream

from haystack_hardneg import CorpusConverter
from haystack_hardneg.ingest.html import NoMainTextError, NotHtmlError, extract_main_text

HTML = Path(__file__).parents[1] / "fixtures" / "html"
BOILERPLATE = ["Sign in to your account", "cookies", "Related products", "Copyright", "Privacy notice", "Careers"]


def test_main_text_keeps_the_article_and_drops_navigation_and_footer():
    page = extract_main_text((HTML / "article.html").read_bytes())
    assert "five-year warranty on the pump and the motor" in page.text
    assert "Replacement machines continue the original warranty period" in page.text
    for junk in BOILERPLATE:
        assert junk not in page.text
    assert page.title


def test_broken_html_still_yields_its_text():
    page = extract_main_text((HTML / "broken.html").read_bytes())
    assert "dishwasher warranty claims" in page.text


def test_binary_and_plain_text_are_not_html():
    with pytest.raises(NotHtmlError, match="binary"):
        extract_main_text((HTML / "image.png").read_bytes())
    with pytest.raises(NotHtmlError, match="no HTML tags"):
        extract_main_text("just words, no markup at all")


def test_page_without_main_text_is_reported():
    with pytest.raises(NoMainTextError, match="no main text"):
        extract_main_text((HTML / "navigation_only.html").read_bytes())


@pytest.fixture
def local_site():
    """A real HTTP server on loopback serving the HTML fixtures."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(HTML), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_each_failing_source_is_reported_and_the_rest_converted(local_site):
    converter = CorpusConverter(timeout=2, retry_attempts=0)
    sources = [
        f"{local_site}/article.html",
        "http://127.0.0.1:9/unreachable.html",  # nothing listens on the discard port
        f"{local_site}/missing.html",  # 404
        str(HTML / "image.png"),
        str(HTML / "navigation_only.html"),
        str(HTML / "no-such-file.html"),
        ByteStream(data=(HTML / "broken.html").read_bytes(), meta={"url": "bytes://broken"}),
    ]
    result = converter.run(sources=sources)
    assert [d.meta["source"] for d in result["documents"]] == [f"{local_site}/article.html", "bytes://broken"]
    assert "five-year warranty" in result["documents"][0].content
    failed = {f["source"]: f["error"] for f in result["failures"]}
    assert set(failed) == {str(s) for s in sources[1:6]}
    assert "NotHtmlError" in failed[str(HTML / "image.png")]
    assert "NoMainTextError" in failed[str(HTML / "navigation_only.html")]
    assert "no such file" in failed[str(HTML / "no-such-file.html")]


def test_converter_reads_jsonl_and_beir_folders(fixtures):
    result = CorpusConverter().run(sources=[str(fixtures / "scifact-tiny")])
    assert len(result["documents"]) == 40
    assert result["documents"][0].meta["title"]
    assert result["failures"] == []


def test_converter_round_trips_to_dict():
    converter = CorpusConverter(min_words=3, timeout=4, retry_attempts=2)
    assert CorpusConverter.from_dict(converter.to_dict()).to_dict() == converter.to_dict()


@pytest.fixture
def large_pages():
    """A real loopback server with a 3 MB page (declared length) and an endless chunked page; it counts the bytes
    it managed to send of the endless one."""
    sent = {"endless": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            block = b"<p>" + b"word " * 2000 + b"</p>\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            if self.path == "/large.html":
                body = b"<html><body>" + block * (3_000_000 // len(block)) + b"</body></html>"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for _ in range(100_000):  # about 1 GB unless the client hangs up
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    sent["endless"] += len(block)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sent
    server.shutdown()


def test_pages_and_files_above_the_size_limit_fail_alone_without_being_read_whole(large_pages, tmp_path):
    site, sent = large_pages
    big_file = tmp_path / "big.html"
    big_file.write_bytes(b"<html><body>" + b"<p>" + b"word " * 300_000 + b"</p></body></html>")
    converter = CorpusConverter(timeout=5, retry_attempts=0, max_bytes=1_000_000)
    sources = [f"{site}/large.html", f"{site}/endless.html", str(big_file), str(HTML / "article.html"),
               ByteStream(data=big_file.read_bytes(), meta={"url": "bytes://big"})]
    result = converter.run(sources=sources)
    assert [d.meta["source"] for d in result["documents"]] == [str(HTML / "article.html")]
    failed = {f["source"]: f["error"] for f in result["failures"]}
    assert "is 3.0 MB, above the limit of 1.0 MB: raise max_bytes (index --max-bytes)" in failed[f"{site}/large.html"]
    assert "above the limit of 1.0 MB" in failed[f"{site}/endless.html"]
    assert "the file" in failed[str(big_file)] and "is 1.5 MB" in failed[str(big_file)]
    assert "the stream bytes://big" in failed["bytes://big"]
    # The endless page was abandoned just past the limit, not read to its end.
    assert sent["endless"] < 50_000_000
    assert CorpusConverter.from_dict(converter.to_dict()).max_bytes == 1_000_000
