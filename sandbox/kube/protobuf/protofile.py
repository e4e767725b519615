"""A parser for the subset of the .proto language that Kubernetes' generated.proto uses.

go-to-protobuf (k8s.io/code-generator cmd/go-to-protobuf) writes proto2 files made of
`syntax`, `package`, `import`, `option` and `message` statements; a message holds
fields (`optional`/`repeated`/`required` TYPE NAME = NUMBER;), `map<K, V>` fields and,
in the language though not in these files, nested messages. Type names are either
fully qualified (`.k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta`) or relative to
the enclosing scopes (`ObjectReference`), resolved as protoc does: innermost scope
first. Anything else (enums, oneofs, services, extensions) is a `ProtoSyntaxError`,
so a newer upstream file that needs more is noticed at load time, not misread.

>>> files = [parse("package a.b; message M { optional string name = 1; "
...                "repeated N items = 2; message N { map<string, int64> counts = 3; } }")]
>>> messages = link(files)
>>> sorted(messages)
['a.b.M', 'a.b.M.N']
>>> messages["a.b.M"].fields[2]
Field(name='items', number=2, label='repeated', type='a.b.M.N', key_type=None)
>>> messages["a.b.M.N"].fields[3].label, messages["a.b.M.N"].fields[3].key_type
('map', 'string')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

# The scalar types these files use (proto2 `int32`/`int64` are plain varints: no zigzag).
SCALARS = frozenset({"string", "bytes", "bool", "int32", "int64"})
Label = Literal["optional", "repeated", "map"]

_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/|(?P<token>"(?:[^"\\]|\\.)*"|[A-Za-z_.][\w.]*|\d+|[{}<>;=,\[\]])""",
    re.DOTALL,
)


class ProtoSyntaxError(ValueError):
    """The text is not .proto, or uses a construct this parser leaves out on purpose."""


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    label: Label
    type: str  # a scalar from SCALARS or a message's full name (once linked)
    key_type: str | None = None  # map fields only


@dataclass(frozen=True)
class Message:
    full_name: str
    fields: dict[int, Field]


@dataclass(frozen=True)
class ProtoFile:
    package: str
    imports: tuple[str, ...]
    messages: tuple[Message, ...]  # fields' types as written, resolved by `link`


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ProtoSyntaxError(f"unexpected character {text[position]!r} at {position}")
        if match.group("token"):
            tokens.append(match.group("token"))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.position = 0
        self.package = ""
        self.imports: list[str] = []
        self.messages: list[Message] = []

    def peek(self) -> str:
        if self.position >= len(self.tokens):
            raise ProtoSyntaxError("unexpected end of file")
        return self.tokens[self.position]

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if expected is not None and token != expected:
            raise ProtoSyntaxError(f"expected {expected!r}, found {token!r}")
        self.position += 1
        return token

    def number(self) -> int:
        token = self.take()
        if not token.isdigit():
            raise ProtoSyntaxError(f"expected a field number, found {token!r}")
        return int(token)

    def parse(self) -> ProtoFile:
        while self.position < len(self.tokens):
            keyword = self.take()
            if keyword == "syntax":
                self.take("=")
                if self.take() not in ('"proto2"', '"proto3"'):
                    raise ProtoSyntaxError("unknown syntax")
                self.take(";")
            elif keyword == "package":
                self.package = self.take()
                self.take(";")
            elif keyword == "import":
                self.imports.append(self.take().strip('"'))
                self.take(";")
            elif keyword == "option":
                self.skip_statement()
            elif keyword == "message":
                self.message(self.package)
            elif keyword != ";":
                raise ProtoSyntaxError(f"unsupported statement {keyword!r}")
        return ProtoFile(self.package, tuple(self.imports), tuple(self.messages))

    def skip_statement(self) -> None:
        while self.take() != ";":
            pass

    def message(self, scope: str) -> None:
        full_name = f"{scope}.{self.take()}" if scope else self.take()
        self.take("{")
        fields: dict[int, Field] = {}
        while (token := self.take()) != "}":
            if token == "message":
                self.message(full_name)
            elif token == "option":
                self.skip_statement()
            elif token in ("optional", "repeated", "required"):
                field = self.field("repeated" if token == "repeated" else "optional")
                fields[field.number] = field
            elif token == "map":
                field = self.map_field()
                fields[field.number] = field
            elif token != ";":
                raise ProtoSyntaxError(f"unsupported message element {token!r} in {full_name}")
        # Types stay as written; `link` resolves them from this message's scope outwards.
        self.messages.append(Message(full_name, fields))

    def field(self, label: Label) -> Field:
        type_name, name = self.take(), self.take()
        self.take("=")
        number = self.number()
        self.field_end()
        return Field(name, number, label, type_name)

    def map_field(self) -> Field:
        self.take("<")
        key_type = self.take()
        self.take(",")
        value_type = self.take()
        self.take(">")
        name = self.take()
        self.take("=")
        number = self.number()
        self.field_end()
        return Field(name, number, "map", value_type, key_type)

    def field_end(self) -> None:
        if self.peek() == "[":  # field options such as [packed = true]: not meaning anything here
            while self.take() != "]":
                pass
        self.take(";")


def parse(text: str) -> ProtoFile:
    return _Parser(text).parse()


def link(files: list[ProtoFile]) -> dict[str, Message]:
    """Every message by full name, with each field's type resolved to a scalar or a
    message's full name; `ProtoSyntaxError` names the first type that resolves nowhere."""
    written = {message.full_name: message for file in files for message in file.messages}
    return {name: _resolved(message, written) for name, message in written.items()}


def _resolved(message: Message, known: dict[str, Message]) -> Message:
    fields = {}
    for number, field in message.fields.items():
        fields[number] = replace(field, type=_resolve(field.type, message.full_name, known))
        if field.key_type is not None and field.key_type not in SCALARS:
            raise ProtoSyntaxError(f"map key type {field.key_type!r} is not a scalar")
    return Message(message.full_name, fields)


def _resolve(type_name: str, scope: str, known: dict[str, Message]) -> str:
    if type_name in SCALARS:
        return type_name
    if type_name.startswith("."):
        candidates = [type_name[1:]]
    else:
        parts = scope.split(".")
        candidates = [".".join([*parts[:cut], type_name]) for cut in range(len(parts), -1, -1)]
    for candidate in candidates:
        if candidate in known:
            return candidate
    raise ProtoSyntaxError(f"unknown type {type_name!r} in {scope}")
