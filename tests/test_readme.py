"""The README's Python API example runs as written, against the simulator."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(simulator, tmp_path: Path, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1
    work = tmp_path / "notebook"
    work.mkdir()
    shutil.copy(simulator.stations_file, work / "stations.yaml")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        namespace: dict = {}
        exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    assert namespace["products"], "the example's station search found nothing"
    record = namespace["record"]
    assert record.status == "complete" and record.counts["added"] > 0
    printed = capsys.readouterr().out
    assert namespace["products"][0]["Name"].removesuffix(".SAFE.zip") in printed
    assert (work / "catalog" / "prip-s1a-iw-raw" / "collection.json").is_file()
    staged = namespace["staged"]
    assert staged.status == "complete" and staged.counts["staged"] == record.counts["added"]
    from rspy_batch.catalog.reader import iter_items
    from rspy_batch.catalog.storage import open_store

    hrefs = {a["href"] for it in iter_items(open_store(str(work / "catalog")), "prip-s1a-iw-raw")
             for a in it["assets"].values()}
    files = {p.as_uri() for p in (work / "staging" / "prip-s1a-iw-raw").rglob("*.zip")}
    assert len(hrefs) >= staged.counts["staged"] and files == hrefs
    processed = namespace["processed"]
    assert processed.status == "complete" and processed.counts["processed"] > 0
    assert len(processed.items) == processed.counts["products"]
    products = list((work / "staging" / "prip-s2b-msil1c-s2-l1c").rglob("*.zarr"))
    assert len(products) == processed.counts["processed"]
    assert all(p.name.startswith("S02MSIL2A_") for p in products)
    assert "L2A-like" in printed
    published = namespace["published"]
    assert published.ok and published.root_url == "http://127.0.0.1:8000/catalog.json"
    assert {r.collection_id for r in published.results} == {
        "prip-s2b-msil1c", "prip-s2b-msil1c-s2-l1c"}
    assert sorted(namespace["found"]) == sorted(
        it["id"] for it in iter_items(open_store(str(work / "catalog")),
                                      "prip-s2b-msil1c-s2-l1c"))
    assert (work / "public" / "esa" / "prip-s2b-msil1c-s2-l1c" / "collection.json").is_file()


def test_readme_campaign_example_is_a_valid_campaign(tmp_path: Path) -> None:
    import yaml

    from rspy_batch.campaign.config import parse_campaign
    from rspy_batch.campaign.plan import steps

    section = README.read_text().split("## Campaigns", 1)[1]
    (block,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    campaign = parse_campaign(yaml.safe_load(block), base=tmp_path, source="README.md")
    assert campaign.processing[0].output == "prip-s2b-msil1c-l1c-v1.0.0"
    assert campaign.options.scheduler_url == "http://luigid:8082"
    assert {s.stage for s in steps(campaign, published=None)} == {
        "ingest", "stage", "process", "publish"}
