"""STAC Browser on a catalog the pipeline made and published, in headless Chromium: from a
local HTTP server and from the S3 server. The root, a collection, a processed item with its
thumbnail and the input item it is derived from must render, with no error page."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from browser import chromium, console_log, page_has_error, wait_image, wait_text
from e2e import run_cli
from pipeline import PROCESSED, STATION, Pipeline, publish_config
from selenium.webdriver.common.by import By

from rspy_batch.browser import browser_url, build_browser, make_server, running
from rspy_batch.catalog import layout
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.catalog.walk import walk_items


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    build_browser(log=print)  # cached after the first build (3-4 min)
    with chromium() as drv:
        yield drv


def publish(pipeline: Pipeline, to: str, config: Path) -> None:
    os.environ["RSPY_SECRETS_FILE"] = str(pipeline.secrets)
    result = run_cli("publish", "--catalog", str(pipeline.catalog), "--to", to,
                     "--config", str(config), "--staging", str(pipeline.staging),
                     "--stations", str(pipeline.stations), "--browser")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STAC Browser:" in result.stdout


def processed_and_input(store: Store) -> tuple[str, dict, str, dict]:
    key, item = next(iter(walk_items(store, f"esa/{PROCESSED}/collection.json")))
    (link,) = [lk for lk in item["links"] if lk["rel"] == "derived_from"]
    input_key = layout.resolve_href(key, link["href"])
    return key, item, input_key, json.loads(store.read(input_key).data)


def browse(driver, browser_base: str, catalog_url: str, store: Store) -> None:
    """Root → collection → processed item (thumbnail) → its input via derived_from."""
    def url(key: str) -> str:
        return browser_url(browser_base, catalog_url, catalog_url.rsplit("/", 1)[0] + "/" + key)

    def show(target: str, text: str) -> None:
        driver.get(target)
        wait_text(driver, text, timeout=60)
        assert page_has_error(driver) is None, console_log(driver)

    show(browser_base, "Test catalog")
    assert "esa" in driver.find_element(By.TAG_NAME, "body").text
    collection = json.loads(store.read(f"esa/{PROCESSED}/collection.json").data)
    show(url(f"esa/{PROCESSED}/collection.json"), collection["title"])

    key, item, input_key, source = processed_and_input(store)
    show(url(key), item["id"])
    driver.find_element(By.XPATH, "//a[@role='tab'][contains(., 'Thumbnails')]").click()
    wait_image(driver, f"{item['id']}.png")
    assert page_has_error(driver) is None, console_log(driver)

    driver.find_element(By.XPATH, f"//a[contains(., '{source['id']}')]").click()
    wait_text(driver, source["id"], timeout=60)
    assert driver.current_url.startswith(url(input_key)), driver.current_url
    assert source["collection"] == STATION
    assert page_has_error(driver) is None, console_log(driver)


def test_browser_reads_catalog_published_to_a_local_server(pipeline: Pipeline, driver,
                                                           tmp_path: Path) -> None:
    site = tmp_path / "public"
    site.mkdir()
    server = make_server(site, mounts={"/data": pipeline.staging})
    publish(pipeline, str(site), publish_config(tmp_path / "publish.yaml", pipeline, server.url))
    with running(server) as base:
        browse(driver, f"{base}browser/", f"{base}catalog.json", open_store(str(site)))


def test_browser_reads_catalog_published_to_s3(pipeline: Pipeline, driver, tmp_path: Path,
                                               s3_bucket: str, s3_server: str) -> None:
    public_url = f"{s3_server}/{s3_bucket}/pub/"
    config = publish_config(tmp_path / "publish.yaml", pipeline, public_url)
    publish(pipeline, f"s3://{s3_bucket}/pub", config)
    # Anonymous read of the public tree, as the printed policy grants it.
    policy = run_cli("publish", "--catalog", str(pipeline.catalog), "--to",
                     f"s3://{s3_bucket}/pub", "--config", str(config), "--print-policy")
    assert policy.returncode == 0, policy.stderr
    printed = json.loads(policy.stdout)
    printed["Statement"] = [st for st in printed["Statement"] if st["Principal"] == "*"]
    boto3.client("s3").put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(printed))
    # S3 has no index document: the browser is opened by its file name.
    browse(driver, f"{public_url}browser/index.html", f"{public_url}catalog.json",
           open_store(f"s3://{s3_bucket}/pub"))
