"""Strict check of an Envoy bootstrap (YAML or JSON) against Envoy's own API protos.

    .venv-envoy/bin/python deploy/envoy/validate.py envoy.yaml
    helm template ... | yq ... | .venv-envoy/bin/python deploy/envoy/validate.py -

The file is parsed into ``envoy.config.bootstrap.v3.Bootstrap`` with protobuf's
``json_format.ParseDict(ignore_unknown_fields=False)``, which is what Envoy does
with a bootstrap: an unknown or misspelled field is an error, and so is a value
of the wrong type. Extension configs (``typed_config`` and other ``Any`` fields)
are checked too: the protobuf modules of every ``@type`` the file names are
imported first, which registers their message types in the default descriptor
pool that ``ParseDict`` resolves ``Any`` against. An ``@type`` that no module
defines is an error as well.

Exit 0 with a one-line summary on stdout; exit 1 with the failing field's path
on stderr. Fields Envoy has deprecated are reported on stderr without failing.

Needs ``xds-protos`` (Envoy's generated Python protos) and PyYAML, which live in
their own venv (``make envoy-setup`` creates ``.venv-envoy``): xds-protos ships
its own, older copies of the ``opentelemetry.proto`` modules, which would
shadow the ones the services and tests use.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# This script shares its name with protoc-gen-validate's "validate" package, which every Envoy
# proto module imports: keep the script's own directory off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import yaml  # noqa: E402
from google.protobuf import descriptor_pool, json_format, message_factory  # noqa: E402
from google.protobuf.descriptor import Descriptor, FieldDescriptor  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

try:
    from envoy.config.bootstrap.v3 import bootstrap_pb2
except ImportError:  # pragma: no cover - depends on the interpreter used
    sys.exit("validate.py needs xds-protos: run it with .venv-envoy/bin/python (make envoy-setup)")

TYPE_URL_PREFIX = "type.googleapis.com/"
# Messages with a special JSON form (a string, a number, any JSON value): their
# content is not a mapping of field names.
WELL_KNOWN = {
    f"google.protobuf.{name}"
    for name in [
        *("Any", "Duration", "Timestamp", "FieldMask", "Struct", "Value", "ListValue", "NullValue", "Empty"),
        *("DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value"),
        *("BoolValue", "StringValue", "BytesValue"),
    ]
}


class Invalid(Exception):
    """The bootstrap does not parse; ``path`` is where, as a dotted field path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '<root>'}: {message}")
        self.path = path


def load(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise Invalid("", f"cannot read: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise Invalid("", "not YAML/JSON: " + " ".join(str(error).split())) from None
    if not isinstance(document, dict):
        raise Invalid("", f"the bootstrap must be a mapping, not {type(document).__name__}")
    return document


def type_urls(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``@type`` in the document, with its path."""
    if isinstance(node, dict):
        if isinstance(node.get("@type"), str):
            yield path, node["@type"]
        for key, value in node.items():
            yield from type_urls(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from type_urls(item, f"{path}[{index}]")


def find_message(full_name: str) -> Descriptor | None:
    try:
        return descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return None


def register(full_name: str) -> Descriptor | None:
    """Imports the modules of the proto package that should define ``full_name``.

    xds-protos lays the modules out by proto package (``envoy.extensions.filters.http.cors.v3``
    holds ``cors_pb2``), so importing every ``*_pb2`` module of the package registers the type.
    A nested message (``pkg.Outer.Inner``) is found by trying the shorter prefixes too."""
    if (found := find_message(full_name)) is not None:
        return found
    parts = full_name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:end])
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for module in pkgutil.iter_modules(spec.submodule_search_locations):
            if module.name.endswith("_pb2"):
                try:
                    importlib.import_module(f"{package}.{module.name}")
                except ImportError:  # a module whose own imports are missing from xds-protos
                    continue
        if (found := find_message(full_name)) is not None:
            return found
    return None


def locate(node: Any, descriptor: Descriptor, path: str) -> None:
    """Walks the document along the protos to name the first field ParseDict would reject, with
    its full path (ParseDict's own message stops at the enclosing ``Any``)."""
    if descriptor.full_name in WELL_KNOWN - {"google.protobuf.Any"} or not isinstance(node, dict):
        return
    if descriptor.full_name == "google.protobuf.Any":
        url = node.get("@type")
        inner = register(url.removeprefix(TYPE_URL_PREFIX)) if isinstance(url, str) else None
        if inner is None:
            raise Invalid(f"{path}.@type", f"unknown type {url!r}")
        body = {key: value for key, value in node.items() if key != "@type"}
        if inner.full_name in WELL_KNOWN:  # {"@type": ".../google.protobuf.Duration", "value": "1s"}
            return
        return locate(body, inner, f"{path}<{inner.name}>")
    fields = {**{f.name: f for f in descriptor.fields}, **{f.json_name: f for f in descriptor.fields}}
    for key, value in node.items():
        here = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            raise Invalid(here, f'{descriptor.full_name} has no field named "{key}"')
        if field.type != FieldDescriptor.TYPE_MESSAGE or value is None:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(value, dict):
                for map_key, item in value.items():
                    locate(item, value_field.message_type, f"{here}[{map_key}]")
        elif field.is_repeated and isinstance(value, list):
            for index, item in enumerate(value):
                locate(item, field.message_type, f"{here}[{index}]")
        else:
            locate(value, field.message_type, here)


def deprecated_fields(message: Message, path: str = "") -> Iterator[str]:
    """Paths of the set fields that Envoy's protos mark deprecated, inside ``Any`` too."""
    if message.DESCRIPTOR.full_name == "google.protobuf.Any":
        inner = find_message(message.TypeName())  # type: ignore[attr-defined]
        if inner is not None:
            unpacked = message_factory.GetMessageClass(inner)()
            message.Unpack(unpacked)  # type: ignore[attr-defined]
            yield from deprecated_fields(unpacked, f"{path}<{inner.name}>")
        return
    for field, value in message.ListFields():
        here = f"{path}.{field.name}" if path else field.name
        if field.GetOptions().deprecated:
            yield here
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    yield from deprecated_fields(item, f"{here}[{key}]")
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from deprecated_fields(item, f"{here}[{index}]")
        else:
            yield from deprecated_fields(value, here)


def parse_error(error: json_format.ParseError) -> Invalid:
    """ParseDict's message ("Failed to parse admin field: Failed to parse address field: ... at
    Bootstrap.admin.address.port_value") as a path and a reason."""
    text = " ".join(str(error).split())
    chain = []
    while match := re.match(r"Failed to parse (\w+) field: ", text):
        chain.append(match[1])
        text = text[match.end() :]
    if at := re.search(r' at "?Bootstrap\.(\S+?)"?\.*$', text):
        return Invalid(at[1], text[: at.start()])
    return Invalid(".".join(chain), text.rstrip("."))


def validate(document: dict[str, Any]) -> tuple[Message, set[str]]:
    """The parsed Bootstrap and the extension types it uses; raises Invalid."""
    types: set[str] = set()
    for path, url in type_urls(document):
        name = url.removeprefix(TYPE_URL_PREFIX)
        if not url.startswith(TYPE_URL_PREFIX) or register(name) is None:
            raise Invalid(f"{path}.@type", f"unknown type {url!r} (not an Envoy API message)")
        types.add(name)
    bootstrap = bootstrap_pb2.Bootstrap()
    try:
        json_format.ParseDict(document, bootstrap, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        # ParseDict's message stops at the enclosing Any: name the exact field when it is an
        # unknown one, else keep ParseDict's reason (a wrong value type, a bad enum name).
        locate(document, bootstrap.DESCRIPTOR, "")
        raise parse_error(error) from None
    return bootstrap, types


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default="-", help="Envoy bootstrap, YAML or JSON ('-' or none: stdin)")
    args = parser.parse_args(argv)
    name = "<stdin>" if args.file == "-" else args.file
    try:
        bootstrap, types = validate(load(args.file))
    except Invalid as error:
        print(f"{name}: invalid Envoy bootstrap: {error}", file=sys.stderr)
        return 1
    for path in deprecated_fields(bootstrap):
        print(f"{name}: warning: deprecated field {path}", file=sys.stderr)
    resources = bootstrap.static_resources
    print(
        f"{name}: valid envoy.config.bootstrap.v3.Bootstrap: {len(resources.listeners)} listener(s), "
        f"{len(resources.clusters)} cluster(s), {len(types)} extension type(s) checked"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
