"""The destination bucket: who may read what (a bucket policy, printed for an
administrator to apply) and CORS (so a browser on another origin may read the catalog).

The policy is computed, not applied: granting access is an administrator's decision, and
the account applying it usually is not the one that publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rspy_batch.catalog.storage import S3Store
from rspy_batch.publish import paths
from rspy_batch.publish.config import PublishConfig

log = logging.getLogger(__name__)

CORS_RULE = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"],
             "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag", "Content-Length"],
             "MaxAgeSeconds": 3600}


def bucket_policy(bucket: str, prefix: str, targets: Iterable[Any], config: PublishConfig,
                  *, owner: str | None = None, public_read: bool = True) -> dict[str, Any]:
    """An S3 bucket policy for a published catalog at ``s3://bucket/prefix``.

    - anonymous read of the public tree: the root, the browser, each owner catalog and
      each public collection (listed one by one, so a private collection is never under
      a public grant, whatever its name);
    - each owner with a ``principal`` in the config: read and list of everything under
      its prefix, private collections included.

    ``targets`` are :class:`rspy_batch.publish.run.Target`; ``owner`` keeps one owner's
    statements only.
    """
    base = f"arn:aws:s3:::{bucket}"
    pre = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    targets = sorted(targets, key=lambda t: (t.owner, t.collection_id))
    statements: list[dict[str, Any]] = []
    if public_read and owner is None:
        resources = [f"{base}/{pre}{paths.ROOT}", f"{base}/{pre}{paths.BROWSER_PREFIX}/*"]
        for o in sorted({t.owner for t in targets if t.public}):
            resources.append(f"{base}/{pre}{paths.owner_key(o)}")
        resources += [f"{base}/{pre}{t.prefix}/*" for t in targets if t.public]
        statements.append({"Sid": "PublicReadCatalog", "Effect": "Allow", "Principal": "*",
                           "Action": "s3:GetObject", "Resource": resources})
    for o in sorted({t.owner for t in targets}):
        if owner is not None and o != owner:
            continue
        principal = config.principal(o)
        if not principal:
            log.warning("owner %s has no principal in the publish config: no statement", o)
            continue
        sid = "".join(c for c in o.title() if c.isalnum())
        statements.append({"Sid": f"OwnerRead{sid}", "Effect": "Allow",
                           "Principal": {"AWS": principal}, "Action": "s3:GetObject",
                           "Resource": f"{base}/{pre}{o}/*"})
        statements.append({"Sid": f"OwnerList{sid}", "Effect": "Allow",
                           "Principal": {"AWS": principal}, "Action": "s3:ListBucket",
                           "Resource": base,
                           "Condition": {"StringLike": {"s3:prefix": [f"{pre}{o}/*"]}}})
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_cors(store: S3Store, mode: str) -> bool:
    """Set the CORS rule on the destination bucket (``mode`` "true"), or only when it has
    none ("auto"). Returns True when a rule was written."""
    if mode == "false":
        return False
    client = store.client
    if mode == "auto":
        try:
            current = client.get_bucket_cors(Bucket=store.bucket).get("CORSRules", [])
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                raise
            current = []
        if current:
            return False
    client.put_bucket_cors(Bucket=store.bucket, CORSConfiguration={"CORSRules": [CORS_RULE]})
    log.info("CORS rule set on bucket %s (GET/HEAD from any origin)", store.bucket)
    return True
