"""Where a container sees its volumes: the mount plan (tables) and the mounts themselves
(root: a mount namespace of the container's own, the host's filesystem untouched)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import posixpath
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox import processes
from sandbox.kube.kubelet.mounts import (
    MAX_COVERED_ENTRIES,
    ContainerRoot,
    Create,
    ImageBind,
    MountConfigError,
    MountPlan,
    MountPlanError,
    PathKind,
    VolumeMount,
    VolumeSource,
    container_mounts,
    plan_mounts,
)
from sandbox.kube.kubelet.runtime import ContainerStartError, start_process
from sandbox.kube.kubelet.volumefs import LocalHost, prepare
from sandbox.kube.podlogs import render_records
from sandbox.mountns import (
    Bind,
    Entry,
    MakeMountPoint,
    MountStep,
    NewRoot,
    PivotRoot,
    ReadOnlyRoot,
    Tmpfs,
)

P = Path
CFG = VolumeSource(P("/state/pod/kubernetes.io~configmap/cfg"), read_only=True)
SCRATCH = VolumeSource(P("/state/pod/kubernetes.io~empty-dir/scratch"), read_only=False)
VOLUMES: dict[str, VolumeSource | None] = {"cfg": CFG, "scratch": SCRATCH, "token": None}


@dataclass
class FakeHost:
    """A host for the tables: directories, files and symlinks by absolute path."""

    dirs: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)

    def kind(self, path: Path) -> PathKind:
        resolved = str(self.realpath(path))
        if resolved in self.dirs:
            return "dir"
        return "file" if resolved in self.files else "missing"

    def realpath(self, path: Path) -> Path:
        current = P("/")
        for part in path.parts[1:]:
            current = current / part
            target = self.links.get(str(current))
            if target is not None:
                current = P(posixpath.normpath(str(current.parent / target)))
        return current

    def entries(self, path: Path) -> tuple[Entry, ...]:
        def children(names: Iterable[str]) -> list[str]:
            return sorted(n for n in names if n != "/" and str(P(n).parent) == str(path))

        return tuple(
            sorted(
                [
                    *(Entry(P(n).name, "dir") for n in children(self.dirs)),
                    *(Entry(P(n).name, "file") for n in children(self.files)),
                    *(Entry(P(n).name, "symlink", self.links[n]) for n in children(self.links)),
                ],
                key=lambda e: e.name,
            )
        )

    def mode(self, path: Path) -> int:
        return 0o755


STATE = {
    "/state",
    "/state/pod",
    "/state/pod/kubernetes.io~configmap",
    str(CFG.path),
    "/state/pod/kubernetes.io~empty-dir",
    str(SCRATCH.path),
}
HOST = FakeHost(
    dirs={"/", "/mnt", "/mnt/data", "/etc", "/srv", "/home", "/run", "/tmp", "/var", *STATE},
    files={"/etc/hosts", "/mnt/README", "/run/lock", f"{CFG.path}/greeting"},
    links={"/var/run": "../run", "/mnt/latest": "data"},
)
MNT_ENTRIES = (Entry("README", "file"), Entry("data", "dir"), Entry("latest", "symlink", "data"))


def mount(name: str, path: str, read_only: bool = False, sub_path: str = "") -> VolumeMount:
    return VolumeMount(name, path, read_only, sub_path)


AT = P("/state/roots/ns_web_uid/app")  # where the container's root is mounted
PROJECT = P("/work/project")
HOST_ROOT = HOST.entries(P("/"))


def root_entries(*replaced: str) -> tuple[Entry, ...]:
    return tuple(e for e in HOST_ROOT if e.name not in replaced)


def new_root(*steps: MountStep, replaced: tuple[str, ...] = ()) -> MountPlan:
    return MountPlan(steps=(NewRoot(AT, root_entries(*replaced)), *steps, PivotRoot(AT)))


@pytest.mark.parametrize(
    ("mounts", "root", "expected"),
    [
        pytest.param(
            [mount("scratch", "/tmp")],
            ContainerRoot(AT),
            new_root(
                MakeMountPoint(AT / "tmp", "dir"),
                Bind(SCRATCH.path, AT / "tmp", False),
                replaced=("tmp",),
            ),
            id="a-top-level-entry-replaced-by-the-volume-not-bound-back",
        ),
        pytest.param(
            [mount("scratch", "/reports")],
            ContainerRoot(AT),
            new_root(MakeMountPoint(AT / "reports", "dir"), Bind(SCRATCH.path, AT / "reports")),
            id="missing-top-level-made-in-the-roots-tmpfs",
        ),
        pytest.param(
            [mount("cfg", "/var/run/secrets/kubernetes.io/serviceaccount")],
            ContainerRoot(AT),
            new_root(
                Tmpfs(AT / "run", 0o755, (Entry("lock", "file"),)),
                MakeMountPoint(AT / "run/secrets", "dir"),
                MakeMountPoint(AT / "run/secrets/kubernetes.io", "dir"),
                MakeMountPoint(AT / "run/secrets/kubernetes.io/serviceaccount", "dir"),
                Bind(CFG.path, AT / "run/secrets/kubernetes.io/serviceaccount", True),
            ),
            id="symlinks-resolved-then-a-tmpfs-over-the-parent-of-the-first-missing",
        ),
        pytest.param(
            [mount("cfg", "/mnt/locust")],
            ContainerRoot(AT),
            new_root(
                Tmpfs(AT / "mnt", 0o755, MNT_ENTRIES),
                MakeMountPoint(AT / "mnt/locust", "dir"),
                Bind(CFG.path, AT / "mnt/locust", True),
            ),
            id="missing-under-mnt-a-tmpfs-that-keeps-mnt",
        ),
        pytest.param(
            [mount("cfg", "/srv/a/b"), mount("scratch", "/mnt/x", read_only=True)],
            ContainerRoot(AT),
            new_root(
                Tmpfs(AT / "mnt", 0o755, MNT_ENTRIES),
                Tmpfs(AT / "srv", 0o755, ()),
                MakeMountPoint(AT / "mnt/x", "dir"),
                Bind(SCRATCH.path, AT / "mnt/x", True),
                MakeMountPoint(AT / "srv/a", "dir"),
                MakeMountPoint(AT / "srv/a/b", "dir"),
                Bind(CFG.path, AT / "srv/a/b", True),
            ),
            id="shallower-first-tmpfs-first-readonly-honoured",
        ),
        pytest.param(
            [mount("cfg", "/etc/hosts", sub_path="greeting")],
            ContainerRoot(AT),
            new_root(Bind(CFG.path / "greeting", AT / "etc/hosts", True)),
            id="subpath-file-over-a-file",
        ),
        pytest.param(
            [mount("scratch", "/mnt/logs", sub_path="logs/app")],
            ContainerRoot(AT),
            dataclasses.replace(
                new_root(
                    Tmpfs(AT / "mnt", 0o755, MNT_ENTRIES),
                    MakeMountPoint(AT / "mnt/logs", "dir"),
                    Bind(SCRATCH.path / "logs/app", AT / "mnt/logs", False),
                ),
                prepare=(
                    Create(SCRATCH.path / "logs", "dir", SCRATCH.path),
                    Create(SCRATCH.path / "logs/app", "dir", SCRATCH.path),
                ),
            ),
            id="missing-subpath-made-in-the-volume",
        ),
        pytest.param(
            [mount("cfg", "/mnt/cfg"), mount("scratch", "/mnt/cfg/scratch")],
            ContainerRoot(AT),
            dataclasses.replace(
                new_root(
                    Tmpfs(AT / "mnt", 0o755, MNT_ENTRIES),
                    MakeMountPoint(AT / "mnt/cfg", "dir"),
                    Bind(CFG.path, AT / "mnt/cfg", True),
                    Bind(SCRATCH.path, AT / "mnt/cfg/scratch", False),
                ),
                prepare=(Create(CFG.path / "scratch", "dir", CFG.path),),
            ),
            id="nested-mount-point-made-in-the-outer-volume",
        ),
        pytest.param(
            [mount("scratch", "/tmp"), mount("cfg", "/etc/hosts", sub_path="greeting")],
            ContainerRoot(AT, read_only=True),
            MountPlan(
                steps=(
                    NewRoot(AT, root_entries("tmp")),
                    MakeMountPoint(AT / "tmp", "dir"),
                    Bind(SCRATCH.path, AT / "tmp", False),
                    Bind(CFG.path / "greeting", AT / "etc/hosts", True),
                    ReadOnlyRoot(AT, (AT / "tmp", AT / "etc/hosts")),
                    PivotRoot(AT),
                )
            ),
            id="read-only-root-filesystem-all-but-the-volumes",
        ),
        pytest.param(
            [mount("scratch", "/tmp")],
            ContainerRoot(AT, (ImageBind("/app", PROJECT),), workdir="/app"),
            new_root(
                MakeMountPoint(AT / "app", "dir"),
                Bind(PROJECT, AT / "app", True),
                MakeMountPoint(AT / "tmp", "dir"),
                Bind(SCRATCH.path, AT / "tmp", False),
                replaced=("app", "tmp"),
            ),
            id="the-images-own-files-read-only-first",
        ),
        pytest.param(
            [],
            ContainerRoot(AT, workdir="/home/locust"),
            new_root(
                Tmpfs(AT / "home", 0o755, ()),
                MakeMountPoint(AT / "home/locust", "dir"),
            ),
            id="a-missing-working-dir-made-in-the-root-as-runc-makes-it",
        ),
        pytest.param(
            [mount("scratch", "/work")],
            ContainerRoot(AT, workdir="/work/out"),
            dataclasses.replace(
                new_root(
                    MakeMountPoint(AT / "work", "dir"),
                    Bind(SCRATCH.path, AT / "work"),
                ),
                prepare=(Create(SCRATCH.path / "out", "dir", SCRATCH.path),),
            ),
            id="a-working-dir-in-a-volume-made-in-the-volume",
        ),
        pytest.param(
            [mount("scratch", "/tmp")],
            ContainerRoot(AT, runtime=(P("/tmp/ci/.venv"), P("/usr/lib/python3"))),
            dataclasses.replace(
                new_root(
                    MakeMountPoint(AT / "tmp", "dir"),
                    Bind(SCRATCH.path, AT / "tmp", False),
                    Bind(P("/tmp/ci/.venv"), AT / "tmp/ci/.venv", True),
                    replaced=("tmp",),
                ),
                prepare=(
                    Create(SCRATCH.path / "ci", "dir", SCRATCH.path),
                    Create(SCRATCH.path / "ci/.venv", "dir", SCRATCH.path),
                ),
            ),
            id="the-images-runtime-under-a-volume-bound-back-inside-it",
        ),
        pytest.param(
            [mount("cfg", "/mnt/cfg")],
            P("/state/rootfs/pod"),
            MountPlan(
                prepare=(
                    Create(P("/state/rootfs/pod/mnt"), "dir", P("/state/rootfs/pod")),
                    Create(P("/state/rootfs/pod/mnt/cfg"), "dir", P("/state/rootfs/pod")),
                ),
                steps=(Bind(CFG.path, P("/state/rootfs/pod/mnt/cfg"), True),),
            ),
            id="stand-in-sees-it-under-its-root",
        ),
        pytest.param(
            [mount("cfg", "/mnt/cfg"), mount("scratch", "/mnt/cfg/s")],
            P("/state/rootfs/pod"),
            MountPlan(
                prepare=(
                    Create(P("/state/rootfs/pod/mnt"), "dir", P("/state/rootfs/pod")),
                    Create(P("/state/rootfs/pod/mnt/cfg"), "dir", P("/state/rootfs/pod")),
                    Create(CFG.path / "s", "dir", CFG.path),
                ),
                steps=(
                    Bind(CFG.path, P("/state/rootfs/pod/mnt/cfg"), True),
                    Bind(SCRATCH.path, P("/state/rootfs/pod/mnt/cfg/s"), False),
                ),
            ),
            id="stand-in-nested",
        ),
    ],
)
def test_mount_plans(
    mounts: list[VolumeMount], root: Path | ContainerRoot, expected: MountPlan
) -> None:
    host = FakeHost(
        set(HOST.dirs) | {"/state/rootfs", "/state/rootfs/pod"}, set(HOST.files), dict(HOST.links)
    )
    assert plan_mounts(mounts, VOLUMES, host, root) == expected


@pytest.mark.parametrize(
    ("mounts", "root", "message"),
    [
        pytest.param(
            [mount("cfg", "/etc/hosts")],
            ContainerRoot(AT),
            'at "/etc/hosts": not a directory: Are you trying to mount a directory onto a file',
            id="directory-onto-a-file",
        ),
        pytest.param(
            [mount("cfg", "/")],
            ContainerRoot(AT),
            'to rootfs at "/": the sandbox does not mount over the host\'s root',
            id="over-root",
        ),
        pytest.param(
            [mount("cfg", "/app/config")],
            ContainerRoot(AT, (ImageBind("/app", PROJECT),)),
            "at \"/app/config\": inside the image's /app, which is the host's own directory",
            id="inside-the-images-own-files",
        ),
    ],
)
def test_mounts_the_sandbox_will_not_make(
    mounts: list[VolumeMount], root: ContainerRoot, message: str
) -> None:
    with pytest.raises(MountPlanError) as caught:
        plan_mounts(mounts, VOLUMES, HOST, root)
    assert message in str(caught.value)


def test_a_subpath_escaping_its_volume_through_a_symlink_is_refused() -> None:
    host = FakeHost(set(HOST.dirs), set(HOST.files), {f"{SCRATCH.path}/out": "/etc"})
    with pytest.raises(MountPlanError, match="not within volume path"):
        plan_mounts([mount("scratch", "/tmp", sub_path="out")], VOLUMES, host, ContainerRoot(AT))


def test_a_directory_with_too_many_entries_is_not_covered() -> None:
    many = {f"/mnt/d{i}" for i in range(MAX_COVERED_ENTRIES + 1)}
    host = FakeHost({"/", "/mnt", *STATE, *many})
    with pytest.raises(MountPlanError, match=f"holds {MAX_COVERED_ENTRIES + 1} entries"):
        plan_mounts([mount("cfg", "/mnt/cfg")], VOLUMES, host, ContainerRoot(AT))


# ---- the container's volumeMounts, checked ----


def spec(*mounts: dict[str, Any]) -> dict[str, Any]:
    return {"name": "app", "volumeMounts": list(mounts)}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param(
            spec({"name": "cfg", "mountPath": "/mnt/cfg/", "readOnly": True}),
            (mount("cfg", "/mnt/cfg", True),),
            id="clean-path-read-only",
        ),
        pytest.param(
            spec({"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}),
            (),
            id="not-materialized-volume-left-out",
        ),
        pytest.param(
            spec({"name": "scratch", "mountPath": "/w", "subPathExpr": "$(POD_NAME)/logs"}),
            (mount("scratch", "/w", sub_path="web-1/logs"),),
            id="sub-path-expr-expanded",
        ),
    ],
)
def test_container_mounts(container: dict[str, Any], expected: tuple[VolumeMount, ...]) -> None:
    assert container_mounts(container, {"POD_NAME": "web-1"}, VOLUMES) == expected


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            spec({"name": "ghost", "mountPath": "/x"}),
            'cannot find volume "ghost" to mount into container "app"',
            id="unknown-volume",
        ),
        pytest.param(
            spec({"name": "cfg", "mountPath": "/x", "subPath": "/etc"}),
            "error SubPath `/etc` must not be an absolute path",
            id="absolute-sub-path",
        ),
        pytest.param(
            spec({"name": "cfg", "mountPath": "/x", "subPath": "a/../../b"}),
            "unable to provision SubPath `a/../../b`: must not contain '..'",
            id="backstep-sub-path",
        ),
        pytest.param(
            spec({"name": "cfg", "mountPath": "/x", "subPathExpr": "$(UNSET)"}),
            'failed to prepare subPath for volumeMount "cfg" of container "app"',
            id="sub-path-expr-of-an-unset-variable",
        ),
        pytest.param(
            spec({"name": "cfg", "mountPath": "/x"}, {"name": "scratch", "mountPath": "/x/"}),
            'container "app": mountPath "/x" must be unique',
            id="duplicate-mount-path",
        ),
        pytest.param(
            spec({"name": "cfg", "mountPath": "relative"}),
            'mountPath "relative" must be an absolute path',
            id="relative-mount-path",
        ),
    ],
)
def test_volume_mounts_the_kubelet_refuses(container: dict[str, Any], message: str) -> None:
    with pytest.raises(MountConfigError) as caught:
        container_mounts(container, {"POD_NAME": "web-1"}, VOLUMES)
    assert message in str(caught.value)


# ---- the mounts themselves (root), on a dedicated directory of the test's own ----

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


@dataclass
class Scene:
    """A pod directory with a ConfigMap-like volume and an emptyDir, and a dedicated `mnt`."""

    tmp: Path
    mnt: Path
    cfg: VolumeSource
    scratch: VolumeSource

    @classmethod
    def make(cls, tmp: Path) -> Scene:
        cfg = tmp / "pod" / "kubernetes.io~configmap" / "cfg"
        cfg.mkdir(parents=True)
        (cfg / "greeting").write_text("hello from the volume\n")
        scratch = tmp / "pod" / "kubernetes.io~empty-dir" / "scratch"
        scratch.mkdir(parents=True)
        mnt = tmp / "mnt"
        (mnt / "kept").mkdir(parents=True)
        (mnt / "kept" / "file").write_text("host content\n")
        (mnt / "link").symlink_to("kept")
        return cls(tmp, mnt, VolumeSource(cfg, True), VolumeSource(scratch, False))

    def plan(self, *mounts: VolumeMount, **root: Any) -> MountPlan:
        volumes: dict[str, VolumeSource | None] = {"cfg": self.cfg, "scratch": self.scratch}
        at = self.tmp / "roots" / "app"
        at.mkdir(parents=True, exist_ok=True)
        return plan_mounts(list(mounts), volumes, LocalHost(), ContainerRoot(at, **root))

    def run(self, script: str, plan: MountPlan, cwd: Path | None = None) -> tuple[int, str]:
        prepare(plan.prepare)

        async def main() -> tuple[int, str]:
            process = await start_process(
                ["/bin/sh", "-c", script],
                {"PATH": "/usr/bin:/bin"},
                self.tmp / "logs" / "0.log",
                self.tmp / "pids",
                "containerd://x",
                lambda: datetime.now(UTC),
                mounts=plan.steps,
                cwd=cwd,
            )
            code = await asyncio.wait_for(process.wait(), 10)
            lines = (self.tmp / "logs" / "0.log").read_text().splitlines()
            return code, render_records(lines, timestamps=False)

        return asyncio.run(main())


@needs_root
def test_the_container_sees_its_volumes_and_the_host_does_not(tmp_path: Path) -> None:
    scene = Scene.make(tmp_path)
    plan = scene.plan(
        mount("cfg", str(scene.mnt / "cfg")), mount("scratch", str(scene.mnt / "a" / "scratch"))
    )
    script = (
        f"cat {scene.mnt}/cfg/greeting; cat {scene.mnt}/kept/file; cat {scene.mnt}/link/file; "
        f"echo written > {scene.mnt}/a/scratch/out && echo wrote; "
        f"touch {scene.mnt}/cfg/new 2>/dev/null || echo read-only"
    )
    code, output = scene.run(script, plan)
    assert (code, output) == (
        0,
        "hello from the volume\nhost content\nhost content\nwrote\nread-only\n",
    )
    assert sorted(p.name for p in scene.mnt.iterdir()) == ["kept", "link"]  # nothing made here
    assert (scene.scratch.path / "out").read_text() == "written\n"  # the emptyDir is the pod's
    assert str(scene.mnt) not in Path("/proc/self/mounts").read_text()
    assert not any(scene.tmp.joinpath("roots", "app").iterdir())  # the root: empty on the host


@needs_root
def test_a_volume_over_the_images_runtime_leaves_the_runtime_visible(tmp_path: Path) -> None:
    """An emptyDir at a directory that holds the sandbox's interpreter (a clone under /tmp,
    the Locust master's emptyDir at /tmp): the runtime stays, read-only, and the rest of
    the directory is the volume's."""
    scene = Scene.make(tmp_path)
    plan = scene.plan(mount("scratch", str(scene.mnt)), runtime=(scene.mnt / "kept",))
    script = (
        f"cat {scene.mnt}/kept/file; ls {scene.mnt}/link 2>/dev/null || echo hidden; "
        f"touch {scene.mnt}/kept/new 2>/dev/null || echo read-only"
    )
    assert scene.run(script, plan) == (0, "host content\nhidden\nread-only\n")
    assert sorted(p.name for p in scene.mnt.iterdir()) == ["kept", "link"]  # the host's, as was
    assert sorted(p.name for p in scene.scratch.path.iterdir()) == ["kept"]  # the mount point


HOST_PATHS = (P("/reports"), P("/run/secrets"), P("/run/secrets/kubernetes.io"))


@needs_root
def test_volumes_at_paths_the_host_lacks_and_nothing_is_made_on_the_host(tmp_path: Path) -> None:
    """/reports and /var/run/secrets/... as on a node: made in the container's root."""
    before = {path: path.exists() for path in HOST_PATHS}
    assert not before[P("/reports")]
    scene = Scene.make(tmp_path)
    plan = scene.plan(
        mount("scratch", "/reports"),
        mount("cfg", "/var/run/secrets/kubernetes.io/serviceaccount"),
    )
    script = (
        "cat /var/run/secrets/kubernetes.io/serviceaccount/greeting; "
        "echo report > /reports/out && echo wrote; ls /run | grep -c . >/dev/null && echo run; "
        "test -d /usr/bin && test -r /proc/self/status && echo host-entries; pwd"
    )
    assert scene.run(script, plan) == (
        0,
        "hello from the volume\nwrote\nrun\nhost-entries\n/\n",
    )
    assert (scene.scratch.path / "out").read_text() == "report\n"
    assert {path: path.exists() for path in HOST_PATHS} == before


@needs_root
def test_a_read_only_root_filesystem_leaves_only_the_volumes_writable(tmp_path: Path) -> None:
    scene = Scene.make(tmp_path)
    plan = scene.plan(mount("scratch", "/reports"), workdir="/work/here", read_only=True)
    script = (
        f"touch {tmp_path}/x 2>/dev/null || echo host-read-only; "
        "touch /new 2>/dev/null || echo root-read-only; "
        "echo ok > /reports/w && echo volume-writable; "
        "echo > /dev/null && test -r /proc/self/status && echo kernel-filesystems; pwd"
    )
    assert scene.run(script, plan, cwd=P("/work/here")) == (
        0,
        "host-read-only\nroot-read-only\nvolume-writable\nkernel-filesystems\n/work/here\n",
    )
    assert not (tmp_path / "x").exists() and not P("/work/here").exists()


@needs_root
def test_a_stand_in_root_gets_its_mount_points_and_a_working_dir_after_the_mounts(
    tmp_path: Path,
) -> None:
    scene = Scene.make(tmp_path)
    root = tmp_path / "rootfs"
    root.mkdir()
    volumes: dict[str, VolumeSource | None] = {"cfg": scene.cfg}
    plan = plan_mounts([mount("cfg", "/etc/cfg")], volumes, LocalHost(), root)
    code, output = scene.run("cat greeting; pwd", plan, cwd=root / "etc" / "cfg")
    assert (code, output) == (0, f"hello from the volume\n{root}/etc/cfg\n")
    assert (root / "etc" / "cfg").is_dir() and not (root / "etc" / "cfg" / "greeting").exists()


def exec_beside(
    tmp_path: Path, plan: MountPlan, command: list[str], cwd: Path | None = None
) -> str:
    """Start a container with `plan`, run `command` as `kubectl exec` runs it beside it."""
    prepare(plan.prepare)

    async def main() -> str:
        container = await start_process(
            ["/bin/sh", "-c", "sleep 30"],
            {"PATH": "/usr/bin:/bin"},
            tmp_path / "logs" / "0.log",
            tmp_path / "pids",
            "containerd://x",
            lambda: datetime.now(UTC),
            mounts=plan.steps,
            cwd=cwd,
        )
        try:
            assert container.pid is not None
            where = processes.process_cwd(container.pid)
            with processes.ExecSetup(os.getpid(), container.pid, where) as setup:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    preexec_fn=setup,
                    timeout=10,
                    check=False,
                )
            return done.stdout + done.stderr
        finally:
            container.kill()
            await asyncio.wait_for(container.wait(), 10)

    return asyncio.run(main())


@needs_root
def test_exec_joins_the_containers_mounts(tmp_path: Path) -> None:
    scene = Scene.make(tmp_path)
    plan = scene.plan(mount("cfg", str(scene.mnt / "cfg")))
    output = exec_beside(tmp_path, plan, ["cat", f"{scene.mnt}/cfg/greeting"])
    assert output == "hello from the volume\n"


@needs_root
def test_exec_starts_in_the_containers_working_directory_in_its_root(tmp_path: Path) -> None:
    scene = Scene.make(tmp_path)
    (scene.scratch.path / "marker").write_text("")
    plan = scene.plan(mount("scratch", "/reports"), workdir="/reports")
    script = ["/bin/sh", "-c", "test -f marker && pwd"]
    assert exec_beside(tmp_path, plan, script, cwd=P("/reports")) == "/reports\n"


@needs_root
def test_a_missing_working_dir_is_a_start_error_in_runcs_words(tmp_path: Path) -> None:
    scene = Scene.make(tmp_path)
    with pytest.raises(ContainerStartError) as caught:
        scene.run("true", MountPlan(), cwd=tmp_path / "nowhere")
    assert str(caught.value) == (
        f'chdir to cwd ("{tmp_path}/nowhere") set in config.json failed: No such file or directory'
    )


@needs_root
@pytest.mark.parametrize("in_new_root", [False, True], ids=["no-tmpfs", "a-bound-back-host-dir"])
def test_a_mount_point_is_never_made_outside_a_tmpfs_of_the_container(
    tmp_path: Path, in_new_root: bool
) -> None:
    """Defence in depth: a hand-made plan whose mount point is on the host's filesystem
    (no tmpfs, or a host directory bound back into the new root) fails before any mkdir."""
    scene = Scene.make(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "cfg"
    at = tmp_path / "roots" / "app"
    at.mkdir(parents=True)
    steps: tuple[MountStep, ...] = (MakeMountPoint(target, "dir"), Bind(scene.cfg.path, target))
    if in_new_root:
        inside = at / target.relative_to("/")
        steps = (
            NewRoot(at, LocalHost().entries(P("/"))),
            MakeMountPoint(inside, "dir"),
            Bind(scene.cfg.path, inside),
        )
    with pytest.raises(ContainerStartError, match="not beneath a tmpfs of the container"):
        scene.run("true", MountPlan(steps=steps))
    assert not target.exists()


def test_prepare_refuses_to_leave_its_directory(tmp_path: Path) -> None:
    owned = tmp_path / "owned"
    owned.mkdir()
    (owned / "out").symlink_to(tmp_path)
    with pytest.raises(OSError, match="not within"):
        prepare([Create(owned / "out" / "x", "dir", owned)])
    assert not (tmp_path / "x").exists()
    prepare([Create(owned / "d", "dir", owned), Create(owned / "d", "dir", owned)])
    prepare([Create(owned / "d" / "f", "file", owned)])
    assert (owned / "d" / "f").is_file()


def test_the_local_host_view(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    (tmp_path / "l").symlink_to("d")
    host = LocalHost()
    assert [host.kind(tmp_path / n) for n in ("d", "f", "l", "nope", "f/x")] == [
        "dir",
        "file",
        "dir",
        "missing",
        "missing",
    ]
    assert host.entries(tmp_path) == (
        Entry("d", "dir"),
        Entry("f", "file"),
        Entry("l", "symlink", "d"),
    )
    assert host.realpath(tmp_path / "l" / "new") == tmp_path.resolve() / "d" / "new"
    assert sys.platform == "linux"
