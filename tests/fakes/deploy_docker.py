"""A fake ``docker`` executable for the deploy tests (standard library only: it starts fast).

Run through the wrapper ``tests.fakes.deploy_rig.FakeDocker`` puts on PATH, it records every
call (argv, the image ref compose would use, whether the deploy secret leaked into its
environment) in ``$FAKE_DOCKER_STATE/calls.jsonl`` and imitates the few answers the deployer
and ``bentoml containerize`` read. ``$FAKE_DOCKER_STATE/fail`` lists verbs to fail;
``slow-<verb>`` holds seconds to stall that verb.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

COMPOSE_OPTIONS_WITH_VALUE = {"--project-name", "-p", "--file", "-f", "--env-file"}


def _verb(argv: list[str]) -> str:
    """``pull``/``up``/``ps`` for compose calls, ``buildx build``, ``inspect``, ..."""
    if argv[:1] == ["compose"]:
        rest = argv[1:]
        while rest and rest[0] in COMPOSE_OPTIONS_WITH_VALUE:
            rest = rest[2:]
        return rest[0] if rest else ""
    if argv[:1] in (["buildx"], ["image"]):
        return " ".join(argv[:2])
    return argv[0] if argv else ""


def image_id(ref: str) -> str:
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def repo_digest(ref: str) -> str:
    """What ``RepoDigests`` holds for an image pulled as ``ref``."""
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def _answer(state: Path, argv: list[str], verb: str, ref: str | None) -> str:
    running = state / "running"
    if verb == "up" and ref:
        running.write_text(ref)
        (state / "images.json").write_text(json.dumps({image_id(ref): ref}))
    if verb == "ps":
        return "c0ffee\n" if running.exists() else ""
    if verb == "inspect":
        return image_id(running.read_text()) + "\n"
    if verb == "image inspect":
        images = json.loads((state / "images.json").read_text())
        return json.dumps([repo_digest(images[argv[-1]])]) + "\n"
    if verb == "buildx build":  # keep the generated Dockerfile: its build dir is temporary
        dockerfile = Path(argv[argv.index("--file") + 1])
        (state / "Dockerfile").write_text(dockerfile.read_text())
    if verb == "version":
        return '"27.3.1"\n'
    if verb == "buildx --help":
        return "  --builder string   Override the configured builder instance\n"
    if verb == "buildx version":
        return "github.com/docker/buildx v0.17.1 0000000\n"
    return ""


def main() -> int:
    state = Path(os.environ["FAKE_DOCKER_STATE"])
    argv = sys.argv[1:]
    verb = _verb(argv)
    ref = os.environ.get("CANDLECAST_IMAGE_REF")
    record = {"argv": argv, "verb": verb, "image_ref": ref}
    record["secret_in_env"] = "CANDLECAST_DEPLOY_SECRET" in os.environ
    with (state / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps(record) + "\n")
    stall = state / f"slow-{verb.replace(' ', '-')}"
    if stall.exists():
        time.sleep(float(stall.read_text()))
    fail = state / "fail"
    if fail.exists() and verb in fail.read_text().splitlines():
        print(f"fake docker: told to fail {verb!r}", file=sys.stderr)
        return 1
    sys.stdout.write(_answer(state, argv, verb, ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
