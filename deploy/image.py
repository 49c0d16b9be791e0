"""``python -m deploy.image``: build the Bento and one multi-arch image from it.

``bentoml containerize --backend buildx`` turns ``--opt platform=A,B`` into
``docker buildx build --platform A,B`` and ``--opt push`` into ``--push``. A multi-platform
build cannot be ``--load``-ed into the local engine, so a local build (no ``--push``) targets
this machine's platform only and loads it; ``--push`` builds linux/amd64 and linux/arm64 into
one manifest tag in the registry.
"""

from __future__ import annotations

import platform as host
import shutil
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console

from candlecast.settings import PROJECT_ROOT, get_settings
from deploy.config import REPOSITORY_PATTERN, TAG_PATTERN

MULTI_ARCH = "linux/amd64,linux/arm64"
BENTOML = [sys.executable, "-m", "bentoml"]
_MACHINES = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64"}

console = Console(stderr=True)
app = typer.Typer(add_completion=False, help=__doc__)


def native_platform() -> str:
    """This machine's Docker platform (what a local ``--load`` build can target)."""
    return _MACHINES.get(host.machine().lower(), "linux/arm64")


def build_command(bentofile: Path, context: Path) -> list[str]:
    return [*BENTOML, "build", "--bentofile", str(bentofile), "--output", "tag", str(context)]


def parse_bento_tag(output: str) -> str:
    """The ``name:version`` that ``bentoml build --output tag`` printed."""
    for line in output.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise ValueError(f"no bento tag in bentoml build output: {output[-300:]!r}")


def containerize_command(bento: str, image_ref: str, platforms: str, push: bool) -> list[str]:
    command = [*BENTOML, "containerize", bento, "--backend", "buildx"]
    command += ["--opt", f"platform={platforms}", "--image-tag", image_ref]
    return command + (["--opt", "push"] if push else [])


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=code)


def _check_inputs(image: str, tag: str | None, platforms: str, push: bool) -> None:
    if not REPOSITORY_PATTERN.fullmatch(image):
        raise _fail(f"--image {image!r} is not a valid lowercase image name", 2)
    if push and "/" not in image:
        raise _fail("--push needs a registry name such as ghcr.io/OWNER/candlecast", 2)
    if tag is not None and not TAG_PATTERN.fullmatch(tag):
        raise _fail(f"--tag {tag!r} must match {TAG_PATTERN.pattern}", 2)
    if "," in platforms and not push:
        raise _fail(
            f"a multi-platform image ({platforms}) cannot be loaded into the local Docker "
            "engine: add --push, or build one platform (the default without --push)",
            2,
        )
    if shutil.which("docker") is None:
        raise _fail("docker not found on PATH (needs Docker with the buildx plugin)", 1)


def _build_bento(bentofile: Path, context: Path) -> str:
    with console.status(f"bentoml build ({bentofile.name})"):
        proc = subprocess.run(build_command(bentofile, context), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise _fail(f"bentoml build failed with exit code {proc.returncode}", 1)
    return parse_bento_tag(proc.stdout)


@app.command()
def main(
    push: bool = typer.Option(False, "--push", help="Build linux/amd64+arm64 and push the tag."),
    image: str = typer.Option(
        "candlecast", envvar="CANDLECAST_IMAGE", help="Image name, e.g. ghcr.io/OWNER/candlecast."
    ),
    tag: str | None = typer.Option(
        None, envvar="CANDLECAST_TAG", help="Image tag (default: the Bento version)."
    ),
    platform: str | None = typer.Option(
        None, help=f"Platforms (default: {MULTI_ARCH} with --push, else this machine's)."
    ),
    bento: str | None = typer.Option(None, help="Containerize this Bento instead of building."),
    bentofile: Path = typer.Option(PROJECT_ROOT / "bentofile.yaml", help="Build config."),
    context: Path = typer.Option(PROJECT_ROOT, help="Build context (project root)."),
) -> None:
    """Run ``bentoml build`` then ``bentoml containerize --backend buildx``."""
    platforms = platform or (MULTI_ARCH if push else native_platform())
    _check_inputs(image, tag, platforms, push)
    get_settings().export_env()  # BENTOML_HOME: the model store the models come from
    bento_tag = bento or _build_bento(bentofile, context)
    image_ref = f"{image}:{tag or bento_tag.split(':', 1)[1]}"
    console.print(f"containerizing {bento_tag} as {image_ref} for {platforms}")
    code = subprocess.run(containerize_command(bento_tag, image_ref, platforms, push)).returncode
    if code != 0:
        raise _fail(f"bentoml containerize failed with exit code {code}", 1)
    print(image_ref)


if __name__ == "__main__":
    app()
