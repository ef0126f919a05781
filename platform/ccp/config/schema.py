"""The JSON schema of cluster.yaml, and the commented example `ccp config init` writes."""

from __future__ import annotations

from pathlib import Path

from ccp.config.versions import default_version

SCHEMA_ID = "https://ccp.io/schemas/cluster-v1alpha1.json"


def json_schema() -> dict:
    from ccp.config.model import ClusterConfig

    schema = ClusterConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def example_text() -> str:
    text = Path(__file__).with_name("example.yaml").read_text()
    return text.replace("@DEFAULT_VERSION@", default_version())
