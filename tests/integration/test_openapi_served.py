"""``schemathesis run --checks all`` against a real ``bentoml serve`` (three services).

The in-process run (tests/unit/test_service_http.py) has the model services inside the
API; here they are processes of their own behind BentoML's HTTP server, as deployed,
so /docs.json is checked as a client reads it: every status, media type and body.
The synthetic market's home (features up to 2024-07-01) and tiny BTC-USD champions.
Expected statuses: schemathesis.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from schemathesis.checks import CHECKS, load_all_checks

from candlecast.settings import PROJECT_ROOT
from deploy.serve import free_port, serve_in_background
from tests.fakes.homes import candlecast_home
from tests.fakes.serving import register_cnn, register_lasso

#: Slow (about 1 min): the default suite runs the same checks in-process
#: (tests/unit/test_service_http.py); this one adds the real server's own answers.
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYMBOL = "BTC-USD"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 40
load_all_checks()
#: What ``--checks all`` runs: the registered checks and the time limit (schemathesis.toml).
ALL_CHECKS = {*CHECKS.get_all_names(), "max_response_time"}


@pytest.fixture(scope="module")
def base_url(synthetic_feature_home):
    from candlecast.feast_store import feature_names

    with candlecast_home(synthetic_feature_home.root):
        names = feature_names("price_model_v2")
        register_lasso(SYMBOL, ratio=0.98, features=names)
        register_cnn(SYMBOL, ratio=1.03, features=names, output_scale=1e-7)
        with serve_in_background(free_port(), env={"CANDLECAST_SERVE_SYMBOLS": SYMBOL}) as client:
            yield client.base_url


def test_schemathesis_all_checks_pass_against_bentoml_serve(base_url, tmp_path):
    events = tmp_path / "events.ndjson"
    cmd = [str(SCHEMATHESIS), "--config-file", str(PROJECT_ROOT / "schemathesis.toml")]
    cmd += ["run", f"{base_url}/docs.json", "--checks", "all", "--no-color"]
    cmd += ["--max-examples", str(MAX_EXAMPLES), "--request-timeout", "60"]
    # One worker: Python 3.11's ast, parsing in two threads at once, fails hypothesis
    cmd += ["--workers", "1", "--report", "ndjson", "--report-ndjson-path", str(events)]
    # In tmp_path: the .schemathesis/ cache the run writes into its working directory
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "No issues found" in output, output[-3000:]
    assert checks_run(events) == ALL_CHECKS


def checks_run(events: Path) -> set[str]:
    """The names of the checks the run's scenarios recorded a result of."""
    names: set[str] = set()
    for line in events.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        for checks in (scenario or {}).get("recorder", {}).get("checks", {}).values():
            names.update(check["name"] for check in checks)
    return names
