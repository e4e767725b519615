"""The JSON shape of Kubernetes' Go API types, read from their `types.go`.

A generated.proto says which fields exist, not how the Go struct behind each message
prints as JSON, and the wire cannot tell either: gogo's generated Marshal writes every
non-pointer field, zero or not, and a set pointer the same way. What the API server
stores is the Go struct encoded as JSON, so the decoder needs, per protobuf field:

- `pointer`: a present zero is a value (`replicas: 0`, `gracePeriodSeconds: 0`);
- `omitempty`: a non-pointer zero is left out (`uid: ""` is not printed);
- the JSON name, and `inline` (`Volume.volumeSource` prints its fields in the Volume);
- whether the struct is a kind (embeds `metav1.TypeMeta`), so only kinds are decoded
  at the top, as the scheme registers only kinds;
- named slice types (`type Verbs []string`), whose message `{items}` prints as a list.

Struct fields are matched to proto fields by the number in their `protobuf:"..."` tag,
which is where go-to-protobuf took the proto field from.

>>> structs, lists = parse_go('''
... type DeploymentSpec struct {
...     // comments are skipped
...     Replicas *int32 `json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`
...     MinReadySeconds int32 `json:"minReady,omitempty" protobuf:"varint,5,opt,name=minReady"`
... }
... type Verbs []string
... ''')
>>> structs["DeploymentSpec"].fields[1]
GoField(json_name='replicas', pointer=True, omitempty=True, inline=False)
>>> structs["DeploymentSpec"].fields[5].pointer, structs["DeploymentSpec"].is_kind, lists
(False, False, {'Verbs'})
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
_NAMED_SLICE = re.compile(r"^type (\w+) \[\][\w.]+\s*$", re.MULTILINE)
_TAGGED = re.compile(r"^\s*([^/`]+?)\s*`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


@dataclass(frozen=True)
class GoField:
    json_name: str
    pointer: bool
    omitempty: bool
    inline: bool


@dataclass(frozen=True)
class GoStruct:
    name: str
    fields: dict[int, GoField]  # by protobuf field number
    is_kind: bool


def parse_go(text: str) -> tuple[dict[str, GoStruct], set[str]]:
    """The structs of one Go file by name, and its named slice types."""
    structs = {}
    for match in _STRUCT.finditer(text):
        name, body = match.group(1), match.group(2)
        fields: dict[int, GoField] = {}
        is_kind = False
        for line in body.splitlines():
            tagged = _TAGGED.match(line)
            if tagged is None:
                continue
            declaration, tags = tagged.group(1).split(), dict(_TAG.findall(tagged.group(2)))
            go_type = declaration[-1]
            json_name, _, options = tags.get("json", "").partition(",")
            if go_type.endswith("TypeMeta") and len(declaration) == 1 and "inline" in options:
                is_kind = True
            if "protobuf" not in tags:
                continue
            number = int(tags["protobuf"].split(",")[1])
            fields[number] = GoField(
                json_name=json_name,
                pointer=go_type.startswith("*"),
                omitempty="omitempty" in options.split(","),
                inline="inline" in options.split(","),
            )
        structs[name] = GoStruct(name, fields, is_kind)
    return structs, set(_NAMED_SLICE.findall(text))
