"""``python -m deploy.webhook``: the Pi's deploy endpoint, ``POST /hooks/deploy``.

Order of checks: size (413, before reading anything), signature and replay (401), payload
(400), lock (409), then 202 with the deployment's id: the deployment runs in a background
thread (a pull and the wait for ``/readyz`` take minutes, longer than proxies keep a request
open). ``GET /deployments/<id>`` (or ``/deployments/latest``) reports it: ``queued``,
``running``, then ``deployed`` / ``rolled_back`` / ``rollback_failed`` / ``failed`` with what
was rolled back. A status request is signed too, over ``"<timestamp>.GET <path>"``, so an
unsigned caller learns nothing (not even the repository).
The secret is read from the environment only; it never appears in a URL, a response or a log.

Standard library only (argparse rather than typer): the deployer runs on the Pi host with the
system Python, outside the image and without the project's heavy dependencies.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from deploy.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, AuthError, ReplayGuard, verify
from deploy.config import MAX_BODY_BYTES, TAG_PATTERN, ConfigError, DeployConfig, load_config
from deploy.deployer import Deployer, DeployInProgressError

DEPLOY_PATH = "/hooks/deploy"
STATUS_PREFIX = "/deployments/"
_STATUS_PATH = re.compile(r"/deployments/(latest|[0-9a-f]{16})")
logger = logging.getLogger("candlecast.webhook")


class RejectedError(Exception):
    """A request refused with ``status``; ``message`` goes to the client, ``reason`` to the log."""

    def __init__(self, status: HTTPStatus, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or message


def parse_request(body: bytes, repository: str) -> tuple[str, str]:
    """Return ``(image, tag)`` from an authenticated body, or raise RejectedError(400)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RejectedError(HTTPStatus.BAD_REQUEST, "body must be a JSON object") from None
    if not isinstance(payload, dict) or set(payload) != {"image", "tag"}:
        raise RejectedError(HTTPStatus.BAD_REQUEST, 'body must be {"image": ..., "tag": ...}')
    image, tag = payload["image"], payload["tag"]
    if image != repository:
        raise RejectedError(HTTPStatus.BAD_REQUEST, f"image must be {repository}")
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise RejectedError(HTTPStatus.BAD_REQUEST, f"tag must match {TAG_PATTERN.pattern}")
    return image, tag


def status_message(path: str) -> bytes:
    """What a status request's signature covers: its method and path (it has no body)."""
    return b"GET " + path.encode("utf-8", errors="replace")


class DeployServer(ThreadingHTTPServer):
    """HTTP server holding the config, the deployer and the replay memory."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: DeployConfig, deployer: Deployer) -> None:
        super().__init__(address, DeployHandler)
        self.config = config
        self.deployer = deployer
        self.guard = ReplayGuard()

    def authenticate(
        self, timestamp: str | None, signature: str | None, body: bytes, once: bool = True
    ) -> None:
        """Check the signature; ``once``: refuse a signature already used (a replayed deploy).

        Status reads pass ``once=False``: a replayed read only shows what its sender saw, and
        a poller may ask twice within the same second (the same timestamp, so signature).
        """
        try:
            verify(self.config.secret, timestamp, signature, body)
            if once:
                self.guard.check_and_remember(signature or "")
        except AuthError as exc:
            message = "invalid or missing signature"
            raise RejectedError(HTTPStatus.UNAUTHORIZED, message, str(exc)) from None


class DeployHandler(BaseHTTPRequestHandler):
    """One request; every answer is a small JSON object."""

    server: DeployServer
    timeout = 15  # seconds a client may take to send its request: no slow-loris threads
    server_version = "candlecast-deployer"
    sys_version = ""

    def do_POST(self) -> None:
        if self.path != DEPLOY_PATH:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            body = self._read_body()
            self.server.authenticate(
                self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER), body
            )
            image, tag = parse_request(body, self.server.config.repository)
            deployment = self.server.deployer.submit(image, tag)
        except RejectedError as exc:
            self._log_rejection(exc.status, exc.reason)
            return self._reply(exc.status, {"error": exc.message})
        except DeployInProgressError as exc:
            self._log_rejection(HTTPStatus.CONFLICT, str(exc))
            return self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
        status_url = STATUS_PREFIX + deployment.id
        accepted = {**deployment.to_dict(), "status_url": status_url}
        self._reply(HTTPStatus.ACCEPTED, accepted, location=status_url)

    def do_GET(self) -> None:
        if self.path == DEPLOY_PATH:
            return self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})
        if not self.path.startswith(STATUS_PREFIX):
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            self.server.authenticate(
                self.headers.get(TIMESTAMP_HEADER),
                self.headers.get(SIGNATURE_HEADER),
                status_message(self.path),
                once=False,
            )
        except RejectedError as exc:
            self._log_rejection(exc.status, exc.reason)
            return self._reply(exc.status, {"error": exc.message})
        match = _STATUS_PATH.fullmatch(self.path)
        record = self.server.deployer.status(match.group(1)) if match else None
        if record is None:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "no such deployment"})
        self._reply(HTTPStatus.OK, record)

    def _read_body(self) -> bytes:
        """Read exactly Content-Length bytes, refusing oversized bodies before reading them."""
        if self.headers.get("Transfer-Encoding"):
            raise RejectedError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RejectedError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if not length.isascii() or not length.isdigit():
            raise RejectedError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            too_large = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            raise RejectedError(too_large, f"body over {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise RejectedError(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def _reply(
        self, status: HTTPStatus, payload: dict[str, object], location: str | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _log_rejection(self, status: HTTPStatus, reason: str) -> None:
        event = {"event": "rejected", "status": int(status), "reason": reason}
        logger.warning(json.dumps({**event, "client": self.client_address[0]}))

    def log_message(self, format: str, *args: object) -> None:
        """Access lines (request line and status, never headers) at debug level."""
        logger.debug("%s %s", self.client_address[0], format % args)


def serve(host: str, port: int, config: DeployConfig) -> None:
    """Serve until interrupted."""
    server = DeployServer((host, port), config, Deployer(config))
    logger.info(json.dumps({"event": "listening", "host": host, "port": server.server_port}))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.webhook",
        description="Serve POST /hooks/deploy: verify the HMAC signature, answer 202, then "
        "deploy the image with docker compose (or CANDLECAST_DEPLOY_COMPOSE) and roll back if "
        "it does not become ready; GET /deployments/<id> reports it. Configured by "
        "CANDLECAST_DEPLOY_* environment variables (secret, image, compose file).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9000, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
