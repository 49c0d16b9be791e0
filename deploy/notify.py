"""``python -m deploy.notify``: send the signed deploy request (used by the CD workflow).

The secret comes from ``CANDLECAST_DEPLOY_SECRET`` only, never from an argument, because
argv shows up in process lists and CI logs. A 409 (a deployment still running) is retried with
a fresh signature until ``--wait-busy`` seconds pass, so two quick pushes both get deployed.
The webhook answers 202 at once; the deployment's status is then polled (signed GETs) until
it ends or ``--wait-deploy`` seconds pass, and the exit code says whether it was deployed.
Standard library only, like the webhook, so CD can run it before installing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from deploy.auth import signed_headers
from deploy.deployer import OUTCOMES
from deploy.webhook import status_message


def encode_request(image: str, tag: str) -> bytes:
    """The exact body the webhook expects."""
    return json.dumps({"image": image, "tag": tag}, separators=(",", ":")).encode()


def send(url: str, secret: bytes, body: bytes, timeout: float) -> tuple[int, str]:
    """POST ``body`` signed now; return ``(status, response text)``."""
    headers = {"Content-Type": "application/json", **signed_headers(secret, body)}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def get_status(url: str, path: str, secret: bytes, timeout: float) -> tuple[int, dict]:
    """GET the deployment status at ``path`` (relative to ``url``), signed over the path."""
    headers = signed_headers(secret, status_message(path))
    request = urllib.request.Request(urllib.parse.urljoin(url, path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"error": exc.read().decode(errors="replace")}


def wait_deployed(
    url: str, secret: bytes, accepted: str, timeout: float, wait: float, interval: float
) -> bool:
    """Poll the status of an accepted deployment until it ends; True if it was deployed."""
    path = json.loads(accepted)["status_url"]
    deadline, seen = time.monotonic() + wait, None
    while True:
        status, record = get_status(url, path, secret, timeout)
        state = record.get("status") if status == 200 else f"HTTP {status}"
        if state != seen:
            print(f"{status} {json.dumps(record)}", flush=True)
            seen = state
        if state in OUTCOMES:
            return state == "deployed"
        if time.monotonic() + interval > deadline:
            print(f"error: not finished after {wait:g} s (last: {state})", file=sys.stderr)
            return False
        time.sleep(interval)


def notify(
    url: str, secret: bytes, body: bytes, timeout: float, wait_busy: float, interval: float
) -> tuple[int, str]:
    """Send until the deployer answers something other than 409; return the final answer."""
    deadline = time.monotonic() + wait_busy
    # Timestamps have one-second resolution and the webhook accepts a signature only once:
    # retries at least a second apart carry a new timestamp, hence a new signature.
    interval = max(interval, 1.0)
    while True:
        status, text = send(url, secret, body, timeout)
        print(f"{status} {text}", flush=True)
        if status != 409 or time.monotonic() + interval > deadline:
            return status, text
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.notify",
        description="Ask the Pi's deployer to deploy IMAGE:TAG (secret from "
        "CANDLECAST_DEPLOY_SECRET), then follow the deployment's status. Exit 0 when it "
        "reports a healthy deployment.",
    )
    parser.add_argument("--url", required=True, help="https://…/hooks/deploy of the deployer")
    parser.add_argument("--image", required=True, help="image repository, e.g. ghcr.io/o/c")
    parser.add_argument("--tag", required=True, help="tag to deploy, e.g. sha-<commit>")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    parser.add_argument("--wait-busy", type=float, default=900, help="seconds to retry a 409")
    parser.add_argument("--retry-interval", type=float, default=15, help="seconds between tries")
    parser.add_argument(
        "--wait-deploy", type=float, default=2400, help="seconds to wait for the outcome"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=5, help="seconds between status requests"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get("CANDLECAST_DEPLOY_SECRET", "").strip()
    if not secret:
        print("error: CANDLECAST_DEPLOY_SECRET is not set", file=sys.stderr)
        return 2
    try:
        body = encode_request(args.image, args.tag)
        waits = (args.timeout, args.wait_busy, args.retry_interval)
        status, text = notify(args.url, secret.encode(), body, *waits)
        if status != 202:
            return 1
        follow = (args.timeout, args.wait_deploy, max(args.poll_interval, 0.1))
        deployed = wait_deployed(args.url, secret.encode(), text, *follow)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        print(f"error: cannot follow the deployment at {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0 if deployed else 1


if __name__ == "__main__":
    sys.exit(main())
