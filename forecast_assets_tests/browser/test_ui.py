"""The Dagster UI in a real browser, the way a person uses the project: look at the asset
graph, materialize one cluster, read its evaluation report, find the schedule and sensor.

Playwright drives Debian's Chromium (`apt-get install chromium`; .ci/run installs it);
Playwright never downloads a browser here. Without /usr/bin/chromium the test is skipped,
unless FORECAST_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure. On a failure the
page is saved as a screenshot under the test's tmp folder (the path is in the message).

UPDATE_DOCS_IMAGES=1 also writes the README's pictures to docs/images/ from this run.
"""

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from forecast_assets.definitions import ASSETS
from forecast_assets.partitions import CLUSTER_PARTITIONS_NAME
from forecast_assets_tests.conftest import DESIGN_ASSETS
from forecast_assets_tests.integration.test_daemon import PROJECT_ROOT, running_dagster_dev

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.daemon]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Read at import: the autouse fixture in conftest.py clears FORECAST_* before each test.
REQUIRE_BROWSER = os.environ.get("FORECAST_REQUIRE_BROWSER") == "1"
DOCS_IMAGES = PROJECT_ROOT / "docs" / "images" if os.environ.get("UPDATE_DOCS_IMAGES") else None

LOCATION = "forecast_assets"
# The graph writes asset names in full only at zoom >= 0.6 (smaller, it draws truncated
# "minimal" boxes); zoom-to-fit reaches that for the whole graph at this width.
GRAPH_VIEWPORT = {"width": 3400, "height": 1500}
RUN_TIMEOUT_MS = 600_000
FINISHED = re.compile(r"^(Success|Failure|Canceled)$")
MATERIALIZED_DRAWN = """name => [...document.querySelectorAll('foreignObject')].some(
    node => node.textContent.trim() === name && node.innerHTML.includes('background-green'))"""


class UiSteps:
    """Names the step in progress and, when one fails, saves the page as a screenshot and
    fails with the step, the screenshot's path and the server log's tail."""

    def __init__(self, page: Page, folder: Path, server_log: Path) -> None:
        self.page = page
        self.folder = folder
        self.server_log = server_log

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except (AssertionError, PlaywrightError) as error:
            self.folder.mkdir(parents=True, exist_ok=True)
            shot = self.folder / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}.png"
            try:
                self.page.screenshot(path=shot, full_page=True)
            except PlaywrightError as screenshot_error:
                shot = Path(f"(no screenshot: {screenshot_error})")
            log = self.server_log.read_text()[-3000:] if self.server_log.exists() else ""
            pytest.fail(f"UI step '{name}' failed: {error}\nscreenshot: {shot}\n{log}")


def graphql_url(client: DagsterGraphQLClient) -> str:
    # The client keeps the endpoint of the server that running_dagster_dev started.
    return client._url


def dismiss_first_visit_dialog(client: DagsterGraphQLClient) -> None:
    """What clicking away the UI's welcome dialog does, so that it covers nothing."""
    reply = requests.post(
        graphql_url(client), json={"query": "mutation { setNuxSeen }"}, timeout=30
    )
    reply.raise_for_status()
    assert reply.json()["data"]["setNuxSeen"] is True


def expected_assets() -> list[str]:
    defined = [key.to_user_string() for asset in ASSETS for key in asset.keys]
    return DESIGN_ASSETS + sorted(set(defined) - set(DESIGN_ASSETS))


def expanded_asset_graph(page: Page, base: str) -> None:
    """The global asset graph with every group expanded, navigation and tree folded away."""
    page.goto(f"{base}/asset-groups")
    # Groups start collapsed: wait for the group boxes, then expand them all.
    page.locator('foreignObject [data-tooltip="per_cluster"]').wait_for()
    page.get_by_text("Hide navigation").click()
    page.locator("button:has([aria-label=settings])").last.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")  # the settings menu stays open otherwise
    page.get_by_role("menuitem", name="Collapse all groups").wait_for(state="detached")
    page.get_by_role("button").filter(has=page.locator("[aria-label=panel_show_right]")).click()


def assert_graph_shows(page: Page, names: list[str]) -> None:
    on_graph = (
        "names => names.every("
        "name => document.querySelector(`foreignObject [data-tooltip='${name}']`))"
    )
    try:
        page.wait_for_function(on_graph, arg=names, timeout=60_000)
    except PlaywrightError:
        shown = page.locator("foreignObject [data-tooltip]").evaluate_all(
            "nodes => nodes.map(node => node.dataset.tooltip)"
        )
        missing = [name for name in names if name not in shown]
        raise AssertionError(f"the asset graph lacks {missing}; it shows {sorted(shown)}") from None


def launched_run_id(page: Page) -> str:
    """The run that the UI's 'Launched run' toast links to."""
    page.get_by_text("Launched run").wait_for()
    href = page.get_by_role("link", name="View", exact=True).get_attribute("href")
    assert href and href.startswith("/runs/"), href
    return href.removeprefix("/runs/")


def run_status_in_ui(page: Page, base: str, run_id: str) -> str:
    """The run page's status tag once the run has finished (the page updates live)."""
    page.goto(f"{base}/runs/{run_id}")
    tag = page.locator("[class*=PageHeader_container] .BaseTag").filter(has_text=FINISHED)
    tag.wait_for(timeout=RUN_TIMEOUT_MS)
    return tag.inner_text().strip()


def materialize_job_from_ui(
    page: Page, base: str, job: str, partition: str | None = None
) -> tuple[str, str]:
    """'Materialize all' on the job's page (for a partitioned job: one partition picked in
    the launch dialog); returns the run id and the status the UI shows when it is done."""
    page.goto(f"{base}/locations/{LOCATION}/jobs/{job}")
    page.get_by_role("button", name="Materialize all").click()
    if partition is not None:
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Select a partition or create one").click()
        page.locator("label").filter(has=page.get_by_text(partition, exact=True)).click()
        page.keyboard.press("Escape")  # closes the partition list, not the dialog
        dialog.get_by_role("button", name="Launch 1 run").click()
    run_id = launched_run_id(page)
    return run_id, run_status_in_ui(page, base, run_id)


def metadata_markdown(page: Page, entry: str):
    """Opens the markdown of one metadata entry (the UI shows it in a dialog)."""
    row = page.locator("tr").filter(has=page.get_by_text(entry, exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=entry)
    dialog.wait_for()
    return dialog


def assert_images_render(images, what: str) -> int:
    """Every image of the locator has loaded with pixels; returns how many there are."""
    for image in images.all():
        # A broken image is complete too, but with no pixels.
        image.evaluate(
            "img => img.complete || new Promise(done => "
            "{ img.addEventListener('load', done); img.addEventListener('error', done); })"
        )
        width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width > 0 and height > 0, f"{what} did not render (broken image)"
    return images.count()


def assert_metric_table(dialog) -> None:
    """The report's first table: each metric for the model next to seasonal naive."""
    mase = dialog.page.get_by_role("cell", name="mase", exact=True)  # relative inside `has`
    table = dialog.locator("table").filter(has=mase).first
    table.wait_for()
    header = [cell.strip() for cell in table.locator("th").all_inner_texts()]
    assert header[:3] == ["metric", "model", "seasonal naive"], header
    model_mase = table.locator("tr").filter(has=mase).locator("td").nth(1).inner_text()
    assert float(model_mase) > 0, model_mase


def open_evaluation_report(page: Page, base: str, partition: str, run_id: str) -> list[str]:
    """The partition's latest materialization of evaluation_report; checks every markdown
    entry renders (plots as real images, the report with its metric table) and returns the
    entries it opened."""
    page.goto(f"{base}/assets/evaluation_report?view=partitions&partition={partition}")
    page.get_by_text("Latest materialization").wait_for()
    page.get_by_role("link", name=run_id[:8]).first.wait_for()
    entries = [
        row.locator("td").first.inner_text().strip()
        for row in page.locator("tr").filter(has=page.get_by_text("[Show Markdown]")).all()
    ]
    assert "report" in entries, entries
    assert "pool_candidates" in entries, entries
    plots = [entry for entry in entries if entry not in ("report", "pool_candidates")]
    assert plots, f"evaluation_report has no plots in its metadata: {entries}"
    # Short markdown shows inline in the table instead of behind [Show Markdown].
    assert_images_render(page.locator("tr img"), "an image in the metadata table")
    for entry in entries:
        dialog = metadata_markdown(page, entry)
        if entry == "report":
            assert_metric_table(dialog)
        elif entry == "pool_candidates":
            # Each candidate of the pool with its accuracy, as a table.
            dialog.locator("table").first.wait_for()
            assert "lightgbm" in dialog.inner_text() and "theta" in dialog.inner_text()
        else:
            dialog.locator("img").first.wait_for()
            assert_images_render(dialog.locator("img"), f"the {entry} plot")
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="hidden")
    return entries


def automation_shows(page: Page, base: str) -> None:
    page.goto(f"{base}/automation")
    for kind, name in (("schedules", "nightly_retrain"), ("sensors", "new_sales_sensor")):
        link = page.locator(f'a[href="/locations/{LOCATION}/{kind}/{name}"]')
        link.wait_for()
        assert name in link.inner_text()


def save_docs_images(browser: Browser, base: str, output: Path, partition: str) -> None:
    """The README's pictures: the asset graph as the UI draws it at a readable size, and one
    evaluation plot as evaluation_report writes it to <output.dir>/reports/."""
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 820})
    try:
        expanded_asset_graph(page, base)
        # Statuses arrive after the layout: wait until the ingest assets are drawn green.
        page.wait_for_function(MATERIALIZED_DRAWN, arg="raw_sales")
        page.screenshot(path=DOCS_IMAGES / "asset_graph.png")
    finally:
        page.close()
    plot = output / "reports" / f"evaluation_{partition}_forecast_vs_actual.png"
    shutil.copyfile(plot, DOCS_IMAGES / "evaluation_plot.png")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"{CHROMIUM} not found (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_a_person_materializes_a_cluster_and_reads_its_evaluation_in_the_ui(
    tmp_path: Path, write_settings, browser: Browser
) -> None:
    # The schedule and sensors stay off: every run here is started from the UI.
    settings = write_settings({"automation": {"enabled": False}})
    output = tmp_path / "output"
    with running_dagster_dev(tmp_path, settings) as (client, instance):
        base = graphql_url(client).removesuffix("/graphql")
        dismiss_first_visit_dialog(client)
        page = browser.new_page(viewport=GRAPH_VIEWPORT)
        page.set_default_timeout(60_000)  # a loaded 2-core machine renders slowly
        ui = UiSteps(page, tmp_path / "screenshots", tmp_path / "dagster_dev.log")

        with ui.step("asset graph lists every asset"):
            expanded_asset_graph(page, base)
            assert_graph_shows(page, expected_assets())

        with ui.step("materialize ingest_job from the UI"):
            ingest_id, status = materialize_job_from_ui(page, base, "ingest_job")
            assert status == "Success", f"ingest_job run {ingest_id}: {status}"
        partitions = instance.get_dynamic_partitions(CLUSTER_PARTITIONS_NAME)
        assert partitions, "clusters registered no partitions"
        partition = partitions[0]

        with ui.step(f"materialize cluster partition {partition} from the UI"):
            run_id, status = materialize_job_from_ui(page, base, "train_job", partition)
            assert status == "Success", f"train_job run {run_id} for {partition}: {status}"
        # What the UI showed agrees with the server and the instance.
        assert client.get_run_status(run_id) == dg.DagsterRunStatus.SUCCESS
        run = instance.get_run_by_id(run_id)
        assert run.tags["dagster/partition"] == partition
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("evaluation_report"), asset_partitions=[partition]
            ),
            limit=1,
        ).records
        assert records and records[0].event_log_entry.run_id == run_id

        with ui.step("evaluation_report shows its plots and metric table"):
            entries = open_evaluation_report(page, base, partition, run_id)
            assert "forecast_vs_actual" in entries, entries

        with ui.step("automation page lists the schedule and the sensor"):
            automation_shows(page, base)

        if DOCS_IMAGES is not None:
            save_docs_images(browser, base, output, partition)
        page.close()
