"""The vendored protobuf schema: upstream's messages, their Go JSON shapes and kinds.

`schemas/kubernetes-protobuf/` mirrors the Go import paths (`k8s.io/api/apps/v1/`
holds that package's `generated.proto` and `types.go`), so each .proto's imports are
files of the same tree and each types.go sits beside the messages it describes.

A request names its kind by apiVersion and kind (runtime.Unknown's typeMeta). The
group's package is found as k8s.io/api lays packages out, `<group's first label>/
<version>` (`rbac.authorization.k8s.io/v1` is `rbac/v1`, the core group is `core`),
and the options kinds that metav1.AddToGroupVersion registers in every group version
(k8s.io/apimachinery pkg/apis/meta/v1/register.go) fall back to meta/v1, as do the
unversioned kinds (`Status`) it registers under `v1`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from sandbox.kube.protobuf import gostructs, protofile
from sandbox.kube.protobuf.gostructs import GoStruct
from sandbox.kube.protobuf.protofile import Message

ROOT = Path(__file__).resolve().parents[3] / "schemas" / "kubernetes-protobuf"
META = ("meta", "v1")
# register.go: optionsTypes and WatchEvent in every group version; the unversioned kinds.
PER_GROUP_META_KINDS = frozenset(
    {
        "WatchEvent",
        "ListOptions",
        "GetOptions",
        "DeleteOptions",
        "CreateOptions",
        "UpdateOptions",
        "PatchOptions",
    }
)
UNVERSIONED_META_KINDS = frozenset(
    {"Status", "APIVersions", "APIGroupList", "APIGroup", "APIResourceList"}
)
_VERSION = re.compile(r"v\d+((alpha|beta)\d+)?")


@dataclass(frozen=True)
class Schema:
    messages: dict[str, Message]  # by full name
    structs: dict[str, GoStruct]  # by the full name of the message they encode
    lists: frozenset[str]  # messages whose Go type is a named slice (`Verbs`)
    packages: dict[tuple[str, str], str]  # (group's short name, version) -> proto package

    def kind(self, api_version: str, kind: str) -> Message | None:
        """The message of a registered kind, or None (as the scheme's NotRegisteredError)."""
        group, _, version = api_version.rpartition("/")
        short = group.split(".")[0] if group else "core"
        for package in self._candidates(short, version, kind):
            name = f"{package}.{kind}"
            struct = self.structs.get(name)
            if struct is not None and struct.is_kind:
                return self.messages[name]
        return None

    def _candidates(self, short: str, version: str, kind: str) -> list[str]:
        candidates = [self.packages[(short, version)]] if (short, version) in self.packages else []
        meta = self.packages.get(META)
        if meta is not None and (
            kind in PER_GROUP_META_KINDS or (short == "core" and kind in UNVERSIONED_META_KINDS)
        ):
            candidates.append(meta)
        return candidates


def load(root: Path) -> Schema:
    files = {path: protofile.parse(path.read_text()) for path in sorted(root.rglob("*.proto"))}
    for path, parsed in files.items():
        for imported in parsed.imports:
            if not (root / imported).is_file():
                raise protofile.ProtoSyntaxError(
                    f"{path} imports {imported}, which is not vendored"
                )
    messages = protofile.link(list(files.values()))
    structs: dict[str, GoStruct] = {}
    lists: set[str] = set()
    packages: dict[tuple[str, str], str] = {}
    for path, parsed in files.items():
        parts = parsed.package.split(".")
        if len(parts) >= 2 and _VERSION.fullmatch(parts[-1]):
            packages[(parts[-2], parts[-1])] = parsed.package
        go_file = path.with_name("types.go")
        if not go_file.is_file():
            continue
        go_structs, go_lists = gostructs.parse_go(go_file.read_text())
        for message in parsed.messages:
            short = message.full_name.removeprefix(parsed.package + ".")
            if short in go_structs:
                structs[message.full_name] = go_structs[short]
            if short in go_lists:
                lists.add(message.full_name)
    return Schema(messages, structs, frozenset(lists), packages)


@functools.cache
def vendored() -> Schema:
    """The schema of schemas/kubernetes-protobuf, parsed once per process (about 0.1 s)."""
    return load(ROOT)
