"""What the endpoint refuses before moto runs: table tests of `check_request`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from sandbox.aws.wire import AwsError, check_request, render_error, service_of


@pytest.mark.parametrize(
    ("service", "params", "code"),
    [
        pytest.param("rds", {"Action": "DescribeDBInstances"}, None, id="known-action"),
        pytest.param("rds", {"Action": "Bogus"}, "InvalidAction", id="unknown-action"),
        pytest.param("rds", {}, "InvalidAction", id="no-action"),
        pytest.param("ec2", {"Action": "RebootDBInstance"}, "InvalidAction", id="other-service"),
        pytest.param("s3", {"Action": "ListBuckets"}, "InvalidAction", id="not-served"),
        pytest.param(
            None, {"Action": "DescribeDBInstances"}, "MissingAuthenticationToken", id="unsigned"
        ),
        pytest.param(
            "rds",
            {"Action": "RebootDBInstance", "ForceFailover": "maybe"},
            "InvalidParameterValue",
            id="not-a-boolean",
        ),
        pytest.param(
            "rds",
            {"Action": "RebootDBInstance", "ForceFailover": "TRUE"},
            None,
            id="boolean-any-case",
        ),
        pytest.param(
            "rds",
            {"Action": "DescribeEvents", "MaxRecords": "5"},
            "InvalidParameterValue",
            id="few-records",
        ),
        pytest.param(
            "elasticache",
            {"Action": "DescribeReplicationGroups", "MaxRecords": "101"},
            "InvalidParameterValue",
            id="many-records",
        ),
        pytest.param(
            "rds",
            {"Action": "DescribeEvents", "MaxRecords": "x"},
            "InvalidParameterValue",
            id="records-nan",
        ),
        pytest.param(
            "ec2", {"Action": "DescribeInstances", "MaxResults": "5"}, None, id="ec2-own-rules"
        ),
    ],
)
def test_check_request(service: str | None, params: dict[str, str], code: str | None) -> None:
    refusal = check_request(service, params)
    assert (refusal.code if refusal else None) == code


@pytest.mark.parametrize(
    ("header", "service"),
    [
        ("AWS4-HMAC-SHA256 Credential=AK/20261126/us-west-2/rds/aws4_request, Sig", "rds"),
        ("AWS4-HMAC-SHA256 Credential=AK/20261126/us-west-2/ec2/aws4_request", "ec2"),
        ("Basic dXNlcjpwYXNz", None),
        ("", None),
    ],
)
def test_service_of(header: str, service: str | None) -> None:
    assert service_of(header) == service


@pytest.mark.parametrize("service", ["ec2", "rds", "elasticache"])
def test_error_bodies_parse_as_the_services_errors(service: str) -> None:
    body = render_error(service, AwsError("InvalidAction", "no <such> action"), "req-1")
    root = ET.fromstring(body)
    assert root.findtext(".//Code") == "InvalidAction"
    assert root.findtext(".//Message") == "no <such> action"


def test_fis_is_rest_json_its_requests_pass_and_its_errors_are_json() -> None:
    assert check_request("fis", {}) is None
    body = json.loads(render_error("fis", AwsError("ValidationException", "no <such>"), "r"))
    assert body == {"__type": "ValidationException", "message": "no <such>"}
