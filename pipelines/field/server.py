"""``gridwatch serve``: the output folder over HTTP on an intranet, and verification posts into the store.

* ``GET``: files of the output folder, read-only; no directory listings, nothing under
  ``state/`` (the store, the token secret, the sent-log) or any hidden name.
* ``POST /verify``: one verification file as the page exports it (``application/json``,
  at most ``[verification] max_file_kb``), checked exactly as ``gridwatch verify import``
  checks a file and stored whole, or refused whole. Answers JSON ``{"ok", "message",
  "marks", "stored"}``: 200 stored, 400 refused, 409 replayed, 411/413/415 wrong length
  or type.

Standard library only (``http.server``), one thread per request. No TLS: bind it to an
intranet address, or put it behind the unit's HTTPS proxy.
"""

from __future__ import annotations

import json
import logging
import posixpath
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipelines.core.settings import Config
from pipelines.field.marks import MarksError, load_secret, parse_marks
from pipelines.field.store import Replayed, StoreError, VerificationStore, store_for

log = logging.getLogger(__name__)


class _Handler(SimpleHTTPRequestHandler):
    store: VerificationStore
    out_root: Path
    secret: bytes
    max_bytes: int

    server_version = "gridwatch"
    sys_version = ""

    def _hidden(self) -> bool:
        parts = [p for p in posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)).split("/") if p]
        return bool(parts) and (parts[0] == "state" or any(p.startswith(".") for p in parts))

    def send_head(self):  # noqa: ANN201 - http.server's signature
        if self._hidden():
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def list_directory(self, path):  # noqa: ANN001, ANN201
        self.send_error(HTTPStatus.FORBIDDEN, "no directory listings")
        return None

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if urllib.parse.urlsplit(self.path).path != "/verify":
            self._answer(HTTPStatus.NOT_FOUND, False, "POST only to /verify")
            return
        if self.headers.get_content_type() != "application/json":
            self._answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, False, "expected Content-Type: application/json")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(HTTPStatus.LENGTH_REQUIRED, False, "expected a Content-Length")
            return
        if not 0 < length <= self.max_bytes:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, False, f"{length} bytes: at most {self.max_bytes} in one post")
            return
        data = self.rfile.read(length)
        source = f"post from {self.client_address[0]}"
        try:
            batch = parse_marks(data, source=source, out_root=self.out_root, secret=self.secret, max_bytes=self.max_bytes)
            result = self.store.add(batch)
        except Replayed as exc:
            self._answer(HTTPStatus.CONFLICT, False, str(exc))
            return
        except (MarksError, StoreError) as exc:
            self._answer(HTTPStatus.BAD_REQUEST, False, f"{exc}; nothing stored")
            return
        log.info("%s: %s %s, %d mark(s), %d stored", source, result.supervisor, result.day, result.marks, result.stored)
        self._answer(HTTPStatus.OK, True, f"已保存 {result.stored} 条核查结果 stored {result.stored} of {result.marks} mark(s)",
                     marks=result.marks, stored=result.stored)

    def _answer(self, status: HTTPStatus, ok: bool, message: str, **extra: int) -> None:
        body = json.dumps({"ok": ok, "message": message, **extra}, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        log.info("%s %s", self.address_string(), format % args)


def make_server(config: Config, out_root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A server for ``out_root`` (not yet serving: call ``serve_forever``); ``port`` 0 picks a free one."""
    v = config.verification
    out_root = Path(out_root).resolve()
    attrs = {"store": store_for(v.store, out_root, config.base_dir), "out_root": out_root,
             "secret": load_secret(v.secret_env, out_root / "state"), "max_bytes": v.max_file_kb * 1024}
    handler = type("Handler", (_Handler,), attrs)
    return ThreadingHTTPServer((host, port), partial(handler, directory=str(out_root)))


def serve(config: Config, out_root: Path, host: str, port: int) -> None:
    """Serve until interrupted."""
    server = make_server(config, out_root, host, port)
    print(f"gridwatch: serving {Path(out_root).resolve()} on http://{host}:{server.server_address[1]}/ (POST /verify); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
