"""Argument checks and command construction of ``python -m deploy.image`` (no docker needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deploy import image

runner = CliRunner()


def test_parse_bento_tag() -> None:
    assert image.parse_bento_tag("noise\n__tag__:candlecast:abc123\n") == "candlecast:abc123"
    with pytest.raises(ValueError, match="no bento tag"):
        image.parse_bento_tag("Successfully built")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--platform", "linux/amd64,linux/arm64"], "cannot be loaded"),
        (["--push", "--image", "candlecast"], "needs a registry name"),
        (["--image", "GHCR.io/Acme/X"], "not a valid lowercase image name"),
        (["--tag", "-latest"], "--tag"),
        (["--platform", "linux/s390x"], "unsupported platform"),
        (["--engine", "kaniko"], "--engine must be one of"),
    ],
)
def test_bad_arguments_exit_2_before_building(args: list[str], message: str) -> None:
    result = runner.invoke(image.app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_missing_docker_is_a_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(image.app, ["--image", "candlecast"])
    assert result.exit_code == 1
    assert "docker not found" in result.output
