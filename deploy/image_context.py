"""The build context of the image: the exported Bento, the wheelhouse and deploy/Dockerfile.

``bentoml export`` writes the Bento with its champion models (the Bento store only references
them). deploy/Dockerfile gets the two things it cannot read itself from the Bento's bento.yaml:
its ``envs`` (bentofile.yaml, the one place they are set) and the name BentoML gave the
``docker.setup_script``. Wheels are hard-linked when the wheelhouse is on the same disk.

The engine's classic builder cannot bind-mount the wheels into a RUN step, and copying them in
would add them to the disk a build needs twice over (context and layer): for it the RUN steps
lose their ``--mount`` and the wheelhouse is served over HTTP on 127.0.0.1 for the build only
(``serve_wheels``), with ``wheels/`` left out of the context.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from candlecast.settings import PROJECT_ROOT
from deploy.platforms import arch_of

DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
_MOUNT = re.compile(r"^RUN --mount=\S+ ", re.MULTILINE)


class ContextError(Exception):
    """The Bento could not be exported or has no setup script."""


def export_bento(bento_tag: str, context: Path) -> Path:
    """``bentoml export`` ``bento_tag`` and unpack it to ``context/bento``."""
    archive = context / "bento.tar.xz"
    command = [sys.executable, "-m", "bentoml", "export", bento_tag, str(archive)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ContextError(f"bentoml export {bento_tag} failed: {proc.stderr[-2000:]}")
    with tarfile.open(archive) as tar:
        tar.extractall(context / "bento", filter="data")
    archive.unlink()
    return context / "bento"


def _env_line(env: dict[str, str]) -> str:
    return f"ENV {env['name']}={json.dumps(str(env.get('value', '')))}"


def render_dockerfile(bento_yaml: Path, template: Path = DOCKERFILE, classic: bool = False) -> str:
    """deploy/Dockerfile with ``# @envs`` and ``# @setup_script`` filled from ``bento_yaml``;
    ``classic``: for the engine's classic builder, every ``RUN --mount=…`` a plain ``RUN``."""
    info = yaml.safe_load(bento_yaml.read_text())
    envs = "\n".join(_env_line(env) for env in info.get("envs") or [])
    image = info.get("image", {})
    commands = [*image.get("commands", []), *image.get("post_commands", [])]
    scripts = [command for command in commands if "script__" in command]
    if len(scripts) != 1:
        raise ContextError(f"{bento_yaml}: expected one docker.setup_script, found {scripts}")
    text = template.read_text().replace("# @envs", envs)
    text = text.replace("# @setup_script", f"RUN {scripts[0]}")
    return _MOUNT.sub("RUN ", text) if classic else text


def link_wheels(wheels: Path, context: Path, platform: str) -> None:
    """Put ``wheels``' files in ``context/wheels/<arch>`` (hard links, else copies)."""
    dest = context / "wheels" / arch_of(platform)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for wheel in wheels.iterdir():
        try:
            os.link(wheel, dest / wheel.name)
        except OSError:
            shutil.copy2(wheel, dest / wheel.name)


def prepare(bento_tag: str, context: Path, classic: bool = False) -> Path:
    """Export the Bento into ``context`` and write ``context/Dockerfile``; return the latter.

    ``classic``: the Dockerfile of the engine's classic builder, and a .dockerignore that keeps
    ``wheels/`` out of the context it uploads (the build fetches them from ``serve_wheels``)."""
    bento = export_bento(bento_tag, context)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(render_dockerfile(bento / "bento.yaml", classic=classic))
    if classic:
        (context / ".dockerignore").write_text("wheels\n")
    return dockerfile


def requirements_path(context: Path, platform: str) -> Path:
    """Where the Dockerfile reads ``platform``'s lock: ``requirements/<arch>.txt``."""
    return context / "requirements" / f"{arch_of(platform)}.txt"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # pip's fetches: not news
        pass


@contextmanager
def serve_wheels(root: Path) -> Iterator[str]:
    """Serve ``root`` (``wheels/<arch>/…``) on 127.0.0.1 while a build runs; yield its URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
