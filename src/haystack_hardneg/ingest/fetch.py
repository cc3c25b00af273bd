"""Web pages fetched with a size limit: streamed, and stopped as soon as a page is larger than the limit, so that a
huge or endless response costs neither the memory nor the time of reading it whole."""

from __future__ import annotations

# The largest page or HTML file converted by default. Extracting the main text takes about 45 times a page's size in
# memory and minutes for tens of MB; pages larger than this are rare and usually not one document.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
USER_AGENT = "haystack-hardneg (+https://github.com/haystack-hardneg)"


class TooLargeError(ValueError):
    """A page or file above the size limit; the message says how to raise it."""


def too_large(what: str, size: int | None, limit: int) -> TooLargeError:
    shown = f"{size / 1e6:.1f} MB" if size is not None else "more"
    return TooLargeError(f"{what} is {shown}, above the limit of {limit / 1e6:.1f} MB: raise max_bytes "
                         f"(index --max-bytes) to convert it, or split it first")


def fetch(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 10.0, retry_attempts: int = 1
          ) -> tuple[bytes, str]:
    """The body of ``url`` and its MIME type, read in chunks and abandoned past ``max_bytes`` (a declared
    Content-Length above it is refused before any body is read). Redirects are followed; network errors and
    5xx answers are retried ``retry_attempts`` times."""
    import httpx

    error: Exception | None = None
    with httpx.Client(follow_redirects=True, timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
        for _ in range(retry_attempts + 1):
            try:
                return _read(client, url, max_bytes)
            except httpx.HTTPStatusError as failed:
                if failed.response.status_code < 500:
                    raise
                error = failed
            except httpx.TransportError as failed:
                error = failed
    assert error is not None
    raise error


def _read(client, url: str, max_bytes: int) -> tuple[bytes, str]:
    with client.stream("GET", url) as response:
        response.raise_for_status()
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise too_large(f"the page {url}", int(declared), max_bytes)
        body, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise too_large(f"the page {url}", None, max_bytes)
            body.append(chunk)
        return b"".join(body), response.headers.get("content-type", "").split(";")[0].strip()
