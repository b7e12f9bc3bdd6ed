"""A real benchmark run, both dashboards on its stores and headless Chromium, once per module.

The run is configs/gsm8k_replay.yaml on 20 items (recorded answers, no model) with a private
ZenML store and MLflow store. The servers are started by llmbench.dashboard, the code behind
`make dashboard`, on free ports, and always stopped. Chromium is Debian's (`apt-get install
chromium`): Playwright's own browser download cannot work offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmbench.dashboard import mlflow_ui, zenml_server
from llmbench.dashboard.network import free_port
from tests.cli_runs import ROOT, isolated_env, run_cli

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")

CHROMIUM = Path("/usr/bin/chromium")
# WebGL off (--disable-3d-apis): the ZenML dashboard draws its background on a WebGL canvas,
# which software GL renders at one core's full load; with it, clicks wait for frames for minutes.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-3d-apis",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 120_000  # a busy 2-core machine: pages wait long, never fail early
LIMIT = 20
LOOPBACK = re.compile(r"^(https?://(127\.0\.0\.1|localhost)[:/]|file:|data:|blob:|about:)")


@dataclass(frozen=True)
class BenchmarkRun:
    """One finished run.py run and where it left everything."""

    folder: Path
    env: dict[str, str]
    output_dir: Path
    run_name: str
    tracking_uri: str
    experiment: str

    def samples(self) -> list[dict[str, object]]:
        lines = (self.output_dir / "samples.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkRun:
    config = ROOT / "configs" / "gsm8k_replay.yaml"
    data = ROOT.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"
    if not data.is_file():
        pytest.skip(f"shared benchmark data not found at {data}")
    folder = tmp_path_factory.mktemp("dashboards")
    tracking_uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    env = {**isolated_env(folder), "MLFLOW_TRACKING_URI": tracking_uri}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    run_name = "dashboards-e2e"
    output_dir = folder / "out"
    run_cli(
        folder, env, "--config", str(config), "--limit", str(LIMIT),
        "--run-name", run_name, "--output-dir", str(output_dir),
    )  # fmt: skip
    return BenchmarkRun(
        folder, env, output_dir, run_name, tracking_uri, experiment="llmbench-gsm8k-replay"
    )


@pytest.fixture(scope="module")
def mlflow_url(benchmark_run: BenchmarkRun) -> Iterator[str]:
    """The MLflow UI on the run's store, started as `make dashboard` starts it."""
    state_dir = benchmark_run.folder / "dashboard-state"
    ui = mlflow_ui.start(benchmark_run.tracking_uri, free_port(), state_dir, benchmark_run.env)
    try:
        yield ui.url
    finally:
        assert mlflow_ui.stop(state_dir)


@pytest.fixture(scope="module")
def zenml_url(benchmark_run: BenchmarkRun) -> Iterator[str]:
    """The local ZenML server on the run's isolated store (zenml login --local)."""
    try:
        yield zenml_server.start(free_port(), env=benchmark_run.env)
    finally:
        zenml_server.stop(env=benchmark_run.env)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    """A fresh browser context per test: no cookies or local storage carried over. Requests
    off this machine are refused at once (the dashboards try CDNs and avatars)."""
    context, fresh = new_page(browser)
    try:
        yield fresh
    finally:
        context.close()


def new_page(browser: sync_api.Browser) -> tuple[sync_api.BrowserContext, sync_api.Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    context.route(lambda url: not LOOPBACK.match(url), lambda route: route.abort())
    return context, context.new_page()


@pytest.fixture(scope="module")
def zenml_dashboard(zenml_url: str, browser: sync_api.Browser, screenshots: Path) -> str:
    """The dashboard past its onboarding: a new server asks for a name and email, a role and
    the infrastructure, then offers Slack. Answered once; the server remembers."""
    context, onboarding = new_page(browser)
    try:
        onboarding.goto(zenml_url)
        sync_api.expect(onboarding.get_by_text("Add your account details")).to_be_visible()
        onboarding.screenshot(path=screenshots / "zenml-onboarding.png")
        onboarding.get_by_label("Name").fill("llmbench test")
        onboarding.get_by_label("Email").fill("llmbench@example.com")
        onboarding.get_by_role("button", name="Continue").click()
        onboarding.get_by_text("ML Engineer", exact=True).click()
        onboarding.get_by_text("My Laptop", exact=True).click()
        onboarding.get_by_role("button", name="Continue").click()
        onboarding.get_by_role("button", name="Skip this step").click()
        onboarding.get_by_role("link", name="Go to Dashboard").click()
        sync_api.expect(onboarding.get_by_role("heading", name="Hi, llmbench test")).to_be_visible()
    finally:
        context.close()
    return zenml_url


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $LLMBENCH_SCREENSHOTS, else a pytest tmp dir."""
    configured = os.environ.get("LLMBENCH_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
