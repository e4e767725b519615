"""The real aws CLI and boto3, pointed at an AWS endpoint by the exports users get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3

from sandbox.aws.inventory import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, REGION

AWS_CLI = Path(sys.executable).with_name("aws")


def exports_for(url: str) -> dict[str, str]:
    """What `resilience sandbox env` exports for an endpoint at `url`."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
    }


def cli_env(exports: dict[str, str]) -> dict[str, str]:
    """The environment with only the AWS settings of `exports` (no user profile leaks in)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **{k: v for k, v in exports.items() if k.startswith("AWS_")},
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def aws_cli(exports: dict[str, str], *args: str) -> Any:
    """`aws ARGS --output json`, parsed; a failure shows the CLI's own message."""
    done = subprocess.run(
        [str(AWS_CLI), *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=cli_env(exports),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def boto(exports: dict[str, str], service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
    )
