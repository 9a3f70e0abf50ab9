"""Pure parts of publishing: configuration, asset rules, leak guard, documents."""

from __future__ import annotations

import pytest

from rspy_batch import redact
from rspy_batch.errors import ConfigError
from rspy_batch.publish.assets import plan_assets
from rspy_batch.publish.config import parse_config, url_prefix
from rspy_batch.publish.documents import extent, summarise
from rspy_batch.publish.guard import find_leaks, private_needles
from rspy_batch.publish.run import _presign_due


def rules(text: str):  # noqa: ANN201
    import yaml

    return parse_config(yaml.safe_load(text)).assets


def fake_sign(url: str, seconds: int) -> str:
    return f"https://signed.example/{url[5:]}?ttl={seconds}"


def test_assets_public_url_presign_copy_and_withheld() -> None:
    assets = {
        "product": {"href": "file:///stage/p/ID.zarr", "roles": ["data"]},
        "b02": {"href": "file:///stage/p/ID.zarr/measurements/b02", "roles": ["data"]},
        "thumbnail": {"href": "file:///stage/p/ID.png", "roles": ["thumbnail"]},
        "zip": {"href": "s3://secret-bucket/x/a b.zip", "roles": ["data"],
                "rspy:staged": "2026-01-01T00:00:00Z",
                "alternate": {"station": {"href": "https://station.eu/odata/v1/Products(1)"}}},
        "aux": {"href": "s3://other/y.bin"},
    }
    plan = plan_assets(assets, item_key="o/c/2026/01/02/ID/ID.json", rules=rules(
        "assets:\n - {from: 'file:///stage/', url: 'https://cdn.example/data'}\n"
        " - {from: 's3://secret-bucket/', presign: 60}\n"), copy_thumbnails=True,
        presigner=fake_sign)
    out = plan.assets
    assert out["product"]["href"] == "https://cdn.example/data/p/ID.zarr"
    assert out["b02"]["href"] == "https://cdn.example/data/p/ID.zarr/measurements/b02"
    assert out["thumbnail"]["href"] == "./ID.png"
    assert [(c.source, c.key) for c in plan.copies] == [
        ("file:///stage/p/ID.png", "o/c/2026/01/02/ID/ID.png")]
    assert out["zip"]["href"] == "https://signed.example/secret-bucket/x/a b.zip?ttl=60"
    assert "alternate" not in out["zip"] and "rspy:staged" not in out["zip"]
    assert plan.presigned
    assert sorted(plan.withheld) == ["aux", "zip#station"]


def test_copied_product_keeps_its_variables_inside_the_copy() -> None:
    assets = {"product": {"href": "s3://b/p/ID.zarr"},
              "ndvi": {"href": "s3://b/p/ID.zarr/measurements/ndvi"}}
    plan = plan_assets(assets, item_key="o/c/2026/01/02/ID/ID.json",
                       rules=rules("assets:\n - {from: 's3://b/', copy: true}\n"),
                       copy_thumbnails=True, presigner=fake_sign)
    assert plan.assets["product"]["href"] == "./ID.zarr"
    assert plan.assets["ndvi"]["href"] == "./ID.zarr/measurements/ndvi"
    assert [c.key for c in plan.copies] == ["o/c/2026/01/02/ID/ID.zarr"]


def test_an_unsafe_copy_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no usable file name"):
        plan_assets({"t": {"href": "file:///stage/..", "roles": ["thumbnail"]}},
                    item_key="o/c/2026/01/02/ID/ID.json", rules=(), copy_thumbnails=True,
                    presigner=fake_sign)


def test_config_rules_placement_and_errors() -> None:
    config = parse_config({"default_owner": "ops", "collections": {
        "prip-*": {"owner": "esa"}, "cadip-*": {"public": False}}})
    assert config.placement("prip-s2b-msil1c", processed=False).owner == "esa"
    assert config.placement("cadip-x", processed=False) == type(
        config.placement("cadip-x", processed=False))("ops", False)
    assert config.placement("auxip-x", processed=False) is None  # station: only when chosen
    assert config.placement("auxip-x-proc", processed=True).owner == "ops"
    assert parse_config({"publish_processed": False}).placement("x", processed=True) is None
    for bad in ({"unknown": 1}, {"default_owner": "../x"}, {"default_owner": "private"},
                {"assets": [{"from": "/x"}]}, {"assets": [{"from": "/x", "presign": 60}]},
                {"assets": [{"from": "s3://b/", "presign": 10**7}]},
                {"public_url": "ftp://x"}, {"cors": "maybe"}):
        with pytest.raises(ConfigError):
            parse_config(bad)
    assert url_prefix("/data/staging").startswith("file:///data/staging/")


def test_leak_guard_finds_kinds_never_values() -> None:
    redact.register_secret("hunter2-very-secret")
    needles = private_needles(station_urls=["http://10.1.2.3:8080/mti/odata/v1/"],
                              private_locations=["s3://internal-bkt/cat", "/srv/staging"],
                              public_locations=["s3://public-bkt/pub"])
    assert find_leaks(b'{"href": "https://public.example/x"}', needles) == []
    found = find_leaks('{"a": "hunter2-very-secret", "b": "http://10.1.2.3:8080/x", '
                       '"c": "file:///srv/staging/x", "d": "https://h/internal-bkt/k"}', needles)
    assert found == sorted(["registered secret", "station URL", "local file URL",
                            "local path", "private bucket"])
    assert "hunter2" not in " ".join(found)
    assert find_leaks(b"s3://public-bkt/pub/x", needles) == ["S3 URL"]
    assert find_leaks(b"https://h/public-bkt/pub/x", needles) == []


def test_summaries_and_extent_of_manifest_entries() -> None:
    values = [{"platform": "sentinel-2b", "instruments": ["msi"], "eo:cloud_cover": 12.5},
              {"platform": "sentinel-2a", "instruments": ["msi"], "eo:cloud_cover": 3.0},
              {"gsd": 10}]
    assert summarise(values) == {"platform": ["sentinel-2a", "sentinel-2b"],
                                 "instruments": ["msi"], "gsd": [10],
                                 "eo:cloud_cover": {"minimum": 3.0, "maximum": 12.5}}
    got = extent([{"bbox": [0, 1, 2, 3], "interval": ["2026-01-02T00:00:00.000Z",
                                                      "2026-01-03T00:00:00.000Z"]},
                  {"bbox": None, "interval": ["2026-01-01T00:00:00.000Z",
                                              "2026-01-01T01:00:00.000Z"]},
                  {"bbox": [-5, 0, 1, 1], "interval": None}])
    assert got == {"spatial": {"bbox": [[-5, 0, 2, 3]]}, "temporal": {"interval": [[
        "2026-01-01T00:00:00.000Z", "2026-01-03T00:00:00.000Z"]]}}


def test_presign_refresh_at_half_life() -> None:
    from datetime import UTC, datetime, timedelta

    signed = datetime(2026, 1, 1, tzinfo=UTC)
    entry = {"signed": "2026-01-01T00:00:00.000Z", "expires": 3600}
    assert not _presign_due(entry, signed + timedelta(minutes=29))
    assert _presign_due(entry, signed + timedelta(minutes=30))
    assert not _presign_due({"digest": "x"}, signed)
