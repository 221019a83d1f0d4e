"""Where tests read named sets from: the committed fixture, or the full shared copies when present.

``FIXTURE`` (``tests/data/shared``, made by ``tests/data/make_shared_fixture.py``) holds a
few synthetic rows of every named set in the upstream layouts with its own manifest, so
every reader, check and command runs on a fresh clone.  ``REAL`` is the full copy
(``$STEER_SHARED_DATA`` or ``../shared/data``, as found when the tests start); tests of
the real counts use it and are skipped, with the reason, where it is absent.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from steer.data.locate import project_shared_dir

FIXTURE = Path(__file__).resolve().parent / "data" / "shared"
REAL = Path(os.environ["STEER_SHARED_DATA"]).resolve() if os.environ.get("STEER_SHARED_DATA") else project_shared_dir()
HAVE_REAL = (REAL / "manifest.json").is_file()
needs_real_shared = pytest.mark.skipif(
    not HAVE_REAL, reason=f"the full shared data copies are not present at {REAL} (fixture tests cover the code)"
)


@contextmanager
def fixture_data(cache: Path) -> Iterator[Path]:
    """Named sets read from ``FIXTURE`` (first in the resolution order), fetch cache in ``cache``;
    the environment is restored afterwards.  For module-scoped fixtures, where ``monkeypatch`` is not available."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEER_SHARED_DATA", str(FIXTURE))
        mp.setenv("STEER_CACHE", str(cache))
        yield FIXTURE


def fixture_entries():
    """The fixture's files as registry entries (its own hashes), for fetch tests."""
    import json

    from steer.data.registry import entries_from_manifest

    return entries_from_manifest(json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8")))


def use_fixture_registry(monkeypatch) -> dict:
    """Make the fixture's hashes the pinned ones (registry, resolution and fetch all read them)."""
    entries = fixture_entries()
    for module in ("steer.data.registry", "steer.data.locate", "steer.data.fetch"):
        monkeypatch.setattr(f"{module}.registry_files", lambda: entries)
    return entries


class UpstreamServer:
    """A real HTTP server on 127.0.0.1 that serves files at their upstream URL paths.

    ``files``: URL path -> bytes.  Honours ``Range: bytes=N-`` (206).  ``cut``: paths whose
    next response sends only half its body, then drops the connection.  ``requests`` records
    (path, Range header) of every GET.
    """

    def __init__(self, files: dict[str, bytes]):
        import http.server
        import threading

        self.files = dict(files)
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                part = body[start:]
                if self.path in server.cut:
                    server.cut.discard(self.path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

            def log_message(self, *args):  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "UpstreamServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def upstream_layout(root: Path, entries) -> dict[str, bytes]:
    """URL path -> bytes for each entry read from ``root`` (a shared-layout folder)."""
    from steer.data.registry import upstream_url

    return {upstream_url(p, base=""): (root / p).read_bytes() for p in entries}
