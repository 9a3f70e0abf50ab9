"""Where things are, when the command line does not say: environment, then defaults.

| setting   | flag          | environment       | default                                   |
|-----------|---------------|-------------------|-------------------------------------------|
| catalog   | ``--catalog`` | ``RSPY_CATALOG``  | ``./catalog``                             |
| stations  | ``--stations``| ``RSPY_STATIONS`` | ``./stations.yaml``                       |
| templates | ``--templates``| ``RSPY_TEMPLATES``| the repository's ``catalog_templates/``  |
| staging   | ``--staging`` | ``RSPY_STAGING``  | ``./staging`` (or ``s3://bucket/prefix``) |
| secrets   |               | ``RSPY_SECRETS_FILE`` | ``~/.config/rspy-batch/secrets.env``  |
| publish to | ``--to``     | ``RSPY_PUBLISH``  | ``./public`` (or ``s3://bucket/prefix``)  |
| publish config | ``--config`` | ``RSPY_PUBLISH_CONFIG`` | none: built-in defaults        |

S3 endpoint, region and credentials come from the standard AWS chain
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/...``).
"""

from __future__ import annotations

import os


def default_catalog() -> str:
    return os.environ.get("RSPY_CATALOG", "catalog")


def default_stations() -> str:
    return os.environ.get("RSPY_STATIONS", "stations.yaml")


def default_templates() -> str | None:
    return os.environ.get("RSPY_TEMPLATES")


def default_staging() -> str:
    return os.environ.get("RSPY_STAGING", "staging")


def default_publish() -> str:
    return os.environ.get("RSPY_PUBLISH", "public")


def default_publish_config() -> str | None:
    return os.environ.get("RSPY_PUBLISH_CONFIG")
