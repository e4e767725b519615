"""`locustio/locust:*` runs the venv's real Locust, bound to the pod's IP, never 0.0.0.0."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import pytest

from sandbox.images import locust, registry
from sandbox.images.registry import DEFAULT_REGISTRY
from sandbox.kube.kubelet.containers import working_dir

ENV = {"POD_IP": "127.0.2.7"}
PYTHON = [sys.executable, "-s", "-P", "-m", "locust"]
BOUND = ["--web-host", "127.0.2.7", "--master-bind-host", "127.0.2.7"]


@pytest.mark.parametrize(
    ("command", "args", "env", "expected"),
    [
        pytest.param([], [], ENV, [*PYTHON, *BOUND], id="entrypoint-alone"),
        pytest.param(
            [],
            ["--master", "--expect-workers", "4"],
            ENV,
            [*PYTHON, "--master", "--expect-workers", "4", *BOUND],
            id="args-after-the-entrypoint",
        ),
        pytest.param(
            ["locust", "-f", "/mnt/locust/x.py"],
            ["--worker"],
            ENV,
            [*PYTHON, "-f", "/mnt/locust/x.py", "--worker", *BOUND],
            id="command-locust",
        ),
        pytest.param(
            ["/opt/venv/bin/locust"],
            ["--web-host", "0.0.0.0", "--master-bind-host=*"],
            ENV,
            [*PYTHON, "--web-host", "0.0.0.0", "--master-bind-host=*", *BOUND],
            id="all-interfaces-overridden",
        ),
        pytest.param(
            [],
            ["--web-host=127.0.0.1"],
            {**ENV, "LOCUST_MASTER_BIND_HOST": "127.0.0.9"},
            [
                *PYTHON,
                "--web-host=127.0.0.1",
                *("--web-host", "127.0.0.1", "--master-bind-host", "127.0.0.9"),
            ],
            id="loopback-asked-for-is-kept",
        ),
        pytest.param(
            [],
            ["--headless", "--", "MyUser"],
            {**ENV, "LOCUST_WEB_HOST": "10.0.2.15"},
            [*PYTHON, "--headless", *BOUND, "--", "MyUser"],
            id="before-the-end-of-options-env-off-loopback-overridden",
        ),
    ],
)
def test_the_process_of_a_locust_container(
    command: list[str], args: list[str], env: dict[str, str], expected: list[str]
) -> None:
    image = DEFAULT_REGISTRY.lookup("locustio/locust:2.47.0")
    assert image.argv(env, command, args) == expected


def test_a_command_other_than_locust_fails_to_start_as_a_missing_executable() -> None:
    image = DEFAULT_REGISTRY.lookup("locustio/locust")
    with pytest.raises(FileNotFoundError, match='exec: "sh": executable file not found'):
        image.argv(ENV, ["sh", "-c", "locust"], [])


def test_without_a_loopback_pod_ip_it_does_not_start() -> None:
    with pytest.raises(OSError, match="loopback POD_IP"):
        locust.launch(["locust"], {"POD_IP": "10.0.2.15"})


@pytest.mark.parametrize(
    "reference", ["locustio/locust", "locustio/locust:2.31.0", "docker.io/locustio/locust:2.47.0"]
)
def test_any_tag_is_the_image_and_keeps_its_reference(reference: str) -> None:
    image = DEFAULT_REGISTRY.lookup(reference)
    assert image.launcher is locust.launch and not image.standin and not image.virtual
    assert image.reference.startswith("docker.io/locustio/locust:")
    env = image.image_env()
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTHONPATH" not in env  # not the repo's modules


def test_working_dir_is_the_workdir_in_the_containers_root_else_slash() -> None:
    image = DEFAULT_REGISTRY.lookup("locustio/locust:2.47.0")
    assert working_dir({}, image) == "/home/locust"
    assert working_dir({"workingDir": "/mnt/locust"}, image) == "/mnt/locust"
    busybox = DEFAULT_REGISTRY.lookup("busybox")
    assert working_dir({"workingDir": "/x"}, busybox) is None
    testapp = DEFAULT_REGISTRY.lookup("sandbox.local/testapp")
    assert working_dir({}, testapp) == "/"


READ_ENV_VARS = """
import json
from locust.argument_parser import get_parser
print(json.dumps({o: a.env_var for a in get_parser()._actions for o in a.option_strings
                  if getattr(a, "env_var", None)}))
"""


def test_the_flags_and_variables_are_locusts_own() -> None:
    """The venv's Locust reads the flags the image adds from the variables it looks at."""
    done = subprocess.run(
        [sys.executable, "-s", "-c", READ_ENV_VARS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    variables = json.loads(done.stdout.splitlines()[-1])
    for flag, variable in locust.BIND_FLAGS:
        assert variables[flag] == variable


def test_the_worked_examples_hold() -> None:
    assert doctest.testmod(locust).attempted > 0
    assert doctest.testmod(locust).failed == 0
    assert doctest.testmod(registry).failed == 0
