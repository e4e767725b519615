"""Pure parts of sandbox/infra: secrets, rendered configuration, the RDS state machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.infra.postgres import (
    DEFAULT_NODES,
    PASSWORD_KEY,
    SECRETS_FILE,
    PgNodeSpec,
    parse_env_file,
    read_db_password,
    render_pg_hba,
    render_pg_ident,
    render_postgresql_conf,
    server_options,
    synchronous_standby_names,
    traversable_by_others,
)
from sandbox.infra.rds_status import (
    EVENT_MESSAGES,
    TRANSITIONS,
    InvalidDBInstanceState,
    RdsAction,
    RdsStatus,
    next_status,
)
from sandbox.infra.supervisor import Endpoint, InfraError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A=1\n", {"A": "1"}, id="one"),
        pytest.param("# c\n\nA=1\nB=2", {"A": "1", "B": "2"}, id="comments-and-blanks"),
        pytest.param("A=x=y\n", {"A": "x=y"}, id="value-holds-equals"),
        pytest.param("A= spaced \n", {"A": " spaced "}, id="value-verbatim"),
        pytest.param("  A=1\n", {"A": "1"}, id="indented-key"),
        pytest.param("junk\nA=1\n", {"A": "1"}, id="line-without-equals"),
        pytest.param("A=1\nA=2\n", {"A": "2"}, id="last-wins"),
        pytest.param("", {}, id="empty"),
    ],
)
def test_parse_env_file(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(text) == expected


def test_read_db_password_from_the_overlay() -> None:
    expected = parse_env_file(SECRETS_FILE.read_text())[PASSWORD_KEY]
    assert read_db_password() == expected != ""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("OTHER=1\n", id="missing"),
        pytest.param(f"{PASSWORD_KEY}=\n", id="empty"),
    ],
)
def test_read_db_password_refuses_a_file_without_it(tmp_path: Path, text: str) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(text)
    with pytest.raises(InfraError, match=PASSWORD_KEY):
        read_db_password(secrets)


def test_read_db_password_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"nope\.env"):
        read_db_password(tmp_path / "nope.env")


def test_password_error_never_shows_the_password(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("SECRET_DB_PASSWORDX=hunter2\n")
    with pytest.raises(InfraError) as raised:
        read_db_password(secrets)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "setting",
    [
        "wal_level = replica",
        "hot_standby = on",
        "synchronous_commit = on",
        "max_wal_senders = 10",
        "password_encryption = 'scram-sha-256'",
    ],
)
def test_postgresql_conf_has(setting: str) -> None:
    assert setting in render_postgresql_conf().splitlines()


def test_postgresql_conf_leaves_synchronous_standby_names_to_alter_system() -> None:
    # In the shared file it would be copied into every base backup and block a
    # freshly promoted primary that has no standby yet.
    assert not [
        line
        for line in render_postgresql_conf().splitlines()
        if line.startswith("synchronous_standby_names")
    ]


@pytest.mark.parametrize(
    ("line", "present"),
    [
        pytest.param(
            "host    all          all         127.0.0.0/8  scram-sha-256", True, id="clients"
        ),
        pytest.param(
            "host    replication  replicator  127.0.0.0/8  scram-sha-256", True, id="replication"
        ),
        pytest.param(
            "local   all          postgres    peer map=sandbox", True, id="superuser-socket"
        ),
    ],
)
def test_pg_hba(line: str, present: bool) -> None:
    assert (line in render_pg_hba().splitlines()) is present


def test_pg_hba_has_no_trust_and_no_address_beyond_loopback() -> None:
    rules = [line for line in render_pg_hba().splitlines() if line and not line.startswith("#")]
    assert all("trust" not in rule for rule in rules)
    assert all(rule.split()[3].startswith("127.") for rule in rules if rule.startswith("host"))


def test_pg_ident_maps_root_and_postgres_to_the_superuser() -> None:
    assert render_pg_ident().splitlines() == [
        "sandbox  root  postgres",
        "sandbox  postgres  postgres",
    ]


def test_server_options_are_per_server() -> None:
    node = PgNodeSpec("b", Endpoint("127.0.3.12", 5433), "us-west-2b")
    assert server_options(node, Path("/tmp/x/b.sock")) == [
        "-c",
        "listen_addresses=127.0.3.12",
        "-c",
        "port=5433",
        "-c",
        "unix_socket_directories=/tmp/x/b.sock",
        "-c",
        "cluster_name=harmonyflow_db_b",
    ]


def test_default_pair() -> None:
    assert [(n.endpoint, n.az) for n in DEFAULT_NODES] == [
        (Endpoint("127.0.3.11", 5432), "us-west-2a"),
        (Endpoint("127.0.3.12", 5432), "us-west-2b"),
    ]


def test_synchronous_standby_names_names_the_standby() -> None:
    assert synchronous_standby_names(DEFAULT_NODES[0]) == 'FIRST 1 ("harmonyflow_db_a")'


# --- the RDS status state machine ------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        pytest.param(RdsStatus.STOPPED, RdsAction.CREATE, RdsStatus.CREATING, id="create"),
        pytest.param(RdsStatus.CREATING, RdsAction.CREATED, RdsStatus.AVAILABLE, id="created"),
        pytest.param(RdsStatus.CREATING, RdsAction.FAIL, RdsStatus.FAILED, id="create-fails"),
        pytest.param(RdsStatus.AVAILABLE, RdsAction.FAILOVER, RdsStatus.REBOOTING, id="failover"),
        pytest.param(
            RdsStatus.REBOOTING,
            RdsAction.FAILOVER_COMPLETED,
            RdsStatus.AVAILABLE,
            id="failover-completed",
        ),
        pytest.param(RdsStatus.REBOOTING, RdsAction.FAIL, RdsStatus.FAILED, id="failover-fails"),
        pytest.param(RdsStatus.AVAILABLE, RdsAction.REBOOT, RdsStatus.REBOOTING, id="reboot"),
        pytest.param(
            RdsStatus.REBOOTING, RdsAction.REBOOT_COMPLETED, RdsStatus.AVAILABLE, id="rebooted"
        ),
        pytest.param(RdsStatus.AVAILABLE, RdsAction.STOP, RdsStatus.STOPPING, id="stop"),
        pytest.param(RdsStatus.FAILED, RdsAction.STOP, RdsStatus.STOPPING, id="stop-failed"),
        pytest.param(RdsStatus.REBOOTING, RdsAction.STOP, RdsStatus.STOPPING, id="stop-rebooting"),
        pytest.param(RdsStatus.STOPPING, RdsAction.STOPPED, RdsStatus.STOPPED, id="stopped"),
    ],
)
def test_next_status(current: RdsStatus, action: RdsAction, expected: RdsStatus) -> None:
    assert next_status(current, action) is expected


@pytest.mark.parametrize(
    ("current", "action"),
    [
        pytest.param(RdsStatus.REBOOTING, RdsAction.FAILOVER, id="failover-during-failover"),
        pytest.param(RdsStatus.CREATING, RdsAction.FAILOVER, id="failover-while-creating"),
        pytest.param(RdsStatus.STOPPED, RdsAction.FAILOVER, id="failover-when-stopped"),
        pytest.param(RdsStatus.FAILED, RdsAction.FAILOVER, id="failover-when-failed"),
        pytest.param(RdsStatus.AVAILABLE, RdsAction.CREATE, id="create-twice"),
        pytest.param(RdsStatus.AVAILABLE, RdsAction.FAILOVER_COMPLETED, id="completed-unstarted"),
        pytest.param(RdsStatus.STOPPED, RdsAction.STOP, id="stop-stopped"),
        pytest.param(RdsStatus.REBOOTING, RdsAction.REBOOT, id="reboot-while-rebooting"),
        pytest.param(RdsStatus.REBOOTING, RdsAction.FAILOVER, id="failover-while-rebooting"),
    ],
)
def test_refused_actions(current: RdsStatus, action: RdsAction) -> None:
    with pytest.raises(InvalidDBInstanceState, match=str(current)):
        next_status(current, action)


def test_statuses_are_the_strings_rds_reports() -> None:
    assert {str(status) for status in RdsStatus} == {
        "stopped",
        "creating",
        "available",
        "rebooting",
        "stopping",
        "starting",
        "failed",
    }


def test_every_status_can_be_left_and_stopping_always_ends_stopped() -> None:
    sources = {current for current, _ in TRANSITIONS}
    assert sources == set(RdsStatus)
    assert next_status(RdsStatus.STOPPING, RdsAction.STOPPED) is RdsStatus.STOPPED


def test_failover_events_are_rds_messages() -> None:
    assert EVENT_MESSAGES[RdsAction.FAILOVER] == "Multi-AZ instance failover started."
    assert EVENT_MESSAGES[RdsAction.FAILOVER_COMPLETED] == "Multi-AZ instance failover completed."


def test_traversable_by_others(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    assert traversable_by_others(Path("/tmp"))
    assert not traversable_by_others(private)
    assert not traversable_by_others(tmp_path / "missing")
    # a 0755 directory under a private parent is still out of reach
    private_parent = private / "inner"
    private_parent.mkdir(mode=0o755)
    assert not traversable_by_others(private_parent)
    assert traversable_by_others(open_dir) == all(
        part.stat().st_mode & 0o001 for part in (open_dir, *open_dir.parents)
    )
