"""``python -m deploy.image``: build the Bento and one image from it, for one or more platforms.

1. ``bentoml build`` makes the Bento; ``bentoml export`` gives its code and champion models.
2. The wheelhouse (``deploy/wheelhouse.py``) holds a wheel of every pinned requirement for
   each platform; it is downloaded on the host only when incomplete, so the image build
   itself (deploy/Dockerfile, ``pip install --no-index``) needs no network.
3. The base is ``--base-image`` (default ``python:3.11-slim``). When the default can be
   neither found locally nor pulled, the local Debian base (``deploy/base.py``,
   ``make base-image``) is built and used instead, and the build says so.
4. With buildx, one ``docker buildx build --platform A,B``; without it, the engine's classic
   builder, one build per platform and a manifest list (``deploy/engine.py``).

A multi-platform image cannot be loaded into the local engine, so a build without ``--push``
targets one platform (this machine's by default) and loads it as ``IMAGE:TAG``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from candlecast.settings import PROJECT_ROOT, get_settings
from deploy import base, engine, image_context, wheelhouse
from deploy.config import REPOSITORY_PATTERN, TAG_PATTERN
from deploy.platforms import MULTI_ARCH, arch_of, native_platform, split

BENTOML = [sys.executable, "-m", "bentoml"]
WHEELHOUSE = PROJECT_ROOT / "build" / "wheelhouse"
ENGINES = ("auto", "buildx", "docker")
BUILD_ERRORS = (
    engine.EngineError,
    base.BaseImageError,
    wheelhouse.WheelhouseError,
    image_context.ContextError,
)

console = Console(stderr=True)
app = typer.Typer(add_completion=False, help=__doc__)


def build_command(bentofile: Path, context: Path) -> list[str]:
    return [*BENTOML, "build", "--bentofile", str(bentofile), "--output", "tag", str(context)]


def parse_bento_tag(output: str) -> str:
    """The ``name:version`` that ``bentoml build --output tag`` printed."""
    for line in output.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise ValueError(f"no bento tag in bentoml build output: {output[-300:]!r}")


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=code)


def _check_inputs(image: str, tag: str | None, platforms: str, push: bool) -> list[str]:
    if not REPOSITORY_PATTERN.fullmatch(image):
        raise _fail(f"--image {image!r} is not a valid lowercase image name", 2)
    if push and "/" not in image:
        raise _fail("--push needs a registry name such as ghcr.io/OWNER/candlecast", 2)
    if tag is not None and not TAG_PATTERN.fullmatch(tag):
        raise _fail(f"--tag {tag!r} must match {TAG_PATTERN.pattern}", 2)
    try:
        names = split(platforms)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    if len(names) > 1 and not push:
        raise _fail(
            f"a multi-platform image ({platforms}) cannot be loaded into the local Docker "
            "engine: add --push, or build one platform (the default without --push)",
            2,
        )
    if shutil.which("docker") is None:
        raise _fail("docker not found on PATH: apt-get install docker.io (or Docker Engine)", 1)
    return names


def _build_bento(bentofile: Path, context: Path) -> str:
    with console.status(f"bentoml build ({bentofile.name})"):
        proc = subprocess.run(build_command(bentofile, context), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise _fail(f"bentoml build failed with exit code {proc.returncode}", 1)
    return parse_bento_tag(proc.stdout)


def _base(requested: str | None, platform: str) -> str:
    """The base for ``platform``, building the local one when needed (and saying so)."""
    ref, why = engine.base_for(requested, platform)
    if ref == base.local_base_ref(platform):
        if why != "requested":
            console.print(f"{why}: building from the local Debian base {ref} instead")
        if engine.image_platform(ref) != platform:
            console.print(f"building {ref} (mmdebstrap, {platform})")
            base.build_base(platform)
    return ref


def _classic(context: Path, ref: str, platforms: list[str], push: bool, requested: str | None):
    """One classic build per platform; with ``push``, arch tags first, then the list."""
    with image_context.serve_wheels(context / "wheels") as url:
        if not push:
            (platform,) = platforms
            engine.classic_build(context, ref, platform, _base(requested, platform), url)
            return
        arch_refs = {p: f"{ref}-{arch_of(p)}" for p in platforms}
        for platform, arch_ref in arch_refs.items():
            engine.classic_build(context, arch_ref, platform, _base(requested, platform), url)
    for arch_ref in arch_refs.values():
        engine.run(["docker", "push", arch_ref], f"docker push {arch_ref}")
    insecure = (engine.registry_of(ref) or "").split(":")[0] in ("127.0.0.1", "localhost")
    for command in engine.manifest_commands(ref, arch_refs, insecure):
        engine.run(["docker", *command], f"docker {' '.join(command[:2])}")
    listed = engine.manifest_platforms(ref)
    console.print(f"{ref}: one manifest list for {', '.join(listed)}")


def _build(bento_tag: str, ref: str, platforms: list[str], options: dict) -> None:
    workdir = Path(options["wheelhouse"]).parent
    workdir.mkdir(parents=True, exist_ok=True)
    classic = options["engine"] != "buildx"
    with tempfile.TemporaryDirectory(prefix="image-context-", dir=workdir) as tmp:
        context = Path(tmp)
        image_context.prepare(bento_tag, context, classic=classic)
        lock = context / "bento" / "env" / "python" / "requirements.txt"
        for platform in platforms:
            requirements = wheelhouse.for_platform(
                lock, image_context.requirements_path(context, platform), platform
            )
            with console.status(f"wheelhouse for {platform}"):
                wheels = wheelhouse.ensure(
                    requirements, Path(options["wheelhouse"]), platform, options["offline"]
                )
            image_context.link_wheels(wheels, context, platform)
        if not classic:
            command = engine.buildx_command(
                context, ref, ",".join(platforms), options["push"], options["base_image"]
            )
            engine.run(["docker", *command], "docker buildx build")
        else:
            engine.check_disk(platforms)
            _classic(context, ref, platforms, options["push"], options["base_image"])


def _check_registry(image: str) -> None:
    """Stop before building when the registry to push to does not answer."""
    registry = engine.registry_of(image)
    down = engine.registry_answers(registry) if registry else None
    if down is not None:
        raise _fail(f"registry {registry} does not answer ({down}): nothing was built", 1)


def _only_base(platform: str | None) -> None:
    try:
        for name in split(platform or MULTI_ARCH):
            print(base.build_base(name))
    except (ValueError, base.BaseImageError) as exc:
        raise _fail(str(exc), 1) from None


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
    registry: str | None = typer.Option(
        None, help="Registry host[:port]: the image becomes REGISTRY/candlecast."
    ),
    base_image: str | None = typer.Option(
        None,
        envvar="BASE_IMAGE",
        help="Base image (default python:3.11-slim, else the local Debian base); "
        "`local`: the local Debian base.",
    ),
    wheels: Path = typer.Option(
        WHEELHOUSE, "--wheelhouse", envvar="CANDLECAST_WHEELHOUSE", help="Wheelhouse folder."
    ),
    offline: bool = typer.Option(False, help="Never download: the wheelhouse must hold all."),
    builder: str = typer.Option("auto", "--engine", help="auto (buildx if any), buildx, docker."),
    base_only: bool = typer.Option(False, "--base-only", help="Only build the local base(s)."),
    bento: str | None = typer.Option(None, help="Build from this Bento instead of building one."),
    bentofile: Path = typer.Option(PROJECT_ROOT / "bentofile.yaml", help="Build config."),
    context: Path = typer.Option(PROJECT_ROOT, help="Build context (project root)."),
) -> None:
    """Build the Bento, then the image (buildx, or the engine's builder and a manifest list)."""
    if base_only:
        return _only_base(platform)
    image = f"{registry}/{image.rsplit('/', 1)[-1]}" if registry else image
    platform = platform or (MULTI_ARCH if push else native_platform())
    platforms = _check_inputs(image, tag, platform, push)
    if builder not in ENGINES:
        raise _fail(f"--engine must be one of {', '.join(ENGINES)}", 2)
    down = engine.engine_down()
    if down is not None:  # every later step needs it: say so once, before building a Bento
        raise _fail(
            f"the Docker engine does not answer ({down}): start it (`sudo dockerd "
            "--bridge=none --iptables=false &`, or `sudo systemctl start docker`) and retry",
            1,
        )
    builder = ("buildx" if engine.has_buildx() else "docker") if builder == "auto" else builder
    if push and builder == "docker":  # buildx pushes itself, at the end of its build
        _check_registry(image)
    get_settings().export_env()  # BENTOML_HOME: the model store the models come from
    bento_tag = bento or _build_bento(bentofile, context)
    ref = f"{image}:{tag or bento_tag.split(':', 1)[1]}"
    console.print(f"building {bento_tag} as {ref} for {', '.join(platforms)} ({builder})")
    options = {"wheelhouse": wheels, "offline": offline, "engine": builder, "push": push}
    try:
        _build(bento_tag, ref, platforms, {**options, "base_image": base_image})
    except BUILD_ERRORS as exc:
        raise _fail(str(exc), 1) from None
    print(ref)


if __name__ == "__main__":
    app()
