"""Configuration: dataclasses whose field help is also the CLI help.

Every setting has a documented default, an environment variable and a flag.
Precedence: flag > environment variable > default. The environment variable
is the class's ``env_prefix`` plus the field name in upper case, e.g. the
ASR service's ``port`` is ``VOICE_ASR_PORT`` and ``--port``.

A config with many settings keeps related ones in a ``SettingGroup``: a
dataclass of settings held in one field of the config (``latency:
LatencySettings = field(default_factory=LatencySettings)``), read as
``config.latency.latency_mode``. Grouping arranges the code and the --help
only: a grouped setting is still a flag and an environment variable of its own
name (``--latency-mode``, ``VOICE_GATEWAY_LATENCY_MODE``), so every setting's
name is unique across the config and its groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from typing import Any, ClassVar, Self


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its help text."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class SettingGroup:
    """Settings that belong together, held in one field of a Config (see the module's docstring).
    Its docstring heads its section of --help."""

    def validate(self) -> None:
        """Raises ValueError on an impossible setting of the group. Subclasses extend it."""


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _scalar_type(annotation: Any) -> type:
    """The concrete type of a field annotation (``X | None`` gives X)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def _is_group(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, SettingGroup)


@dataclasses.dataclass(frozen=True)
class _Setting:
    """One flag and environment variable: a field of the Config, or of one of its groups."""

    field: dataclasses.Field[Any]
    kind: type
    group: str | None = None  # the Config field holding its SettingGroup

    @property
    def name(self) -> str:
        return self.field.name


@dataclasses.dataclass
class Config:
    """Base for every process's configuration."""

    env_prefix: ClassVar[str] = "VOICE_"

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return f"{cls.env_prefix}{field_name.upper()}"

    @classmethod
    def _groups(cls) -> dict[str, type[SettingGroup]]:
        """The fields that hold a SettingGroup, by name."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if _is_group(hints[f.name])}

    @classmethod
    def _settings(cls) -> list[_Setting]:
        """Every setting, in the order of the fields: the Config's own, and each group's in its place."""
        hints, groups = typing.get_type_hints(cls), cls._groups()
        found: list[_Setting] = []
        for f in dataclasses.fields(cls):
            if f.name in groups:
                group_hints = typing.get_type_hints(groups[f.name])
                found += [
                    _Setting(g, _scalar_type(group_hints[g.name]), f.name) for g in dataclasses.fields(groups[f.name])
                ]
            else:
                found.append(_Setting(f, _scalar_type(hints[f.name])))
        names = [s.name for s in found]
        if len(set(names)) < len(names):  # one flag, one variable per name
            raise TypeError(f"{cls.__name__}: settings named twice: {sorted({n for n in names if names.count(n) > 1})}")
        return found

    @classmethod
    def setting_names(cls) -> list[str]:
        """The name of every setting (its flag and variable without their prefix), grouped ones included."""
        return [s.name for s in cls._settings()]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """A flag per setting; a group's under its own heading in --help (its docstring below it)."""
        sections = {
            name: parser.add_argument_group(name.replace("_", " "), kind.__doc__)
            for name, kind in cls._groups().items()
        }
        for s in cls._settings():
            cls._add_argument(parser if s.group is None else sections[s.group], s)

    @classmethod
    def _add_argument(cls, target: argparse._ActionsContainer, s: _Setting) -> None:
        flag = "--" + s.name.replace("_", "-")
        help_text = f"{s.field.metadata.get('help', '')} [env {cls.env_name(s.name)}; default: {s.field.default!r}]"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if s.kind is bool:
            target.add_argument(flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            target.add_argument(flag, dest=s.name, type=s.kind, default=None, metavar=s.name.upper(), help=help_text)

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Defaults, then environment variables, then explicit overrides (by setting name, grouped or not)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in cls._settings():
            raw = environ.get(cls.env_name(s.name))
            if raw is None or raw == "":
                continue
            try:
                values[s.name] = _parse_bool(raw) if s.kind is bool else s.kind(raw)
            except ValueError as exc:
                raise ValueError(f"{cls.env_name(s.name)}={raw!r}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls._build(values)
        config.validate()
        return config

    @classmethod
    def _build(cls, values: dict[str, Any]) -> Self:
        """The config of ``values`` (setting name -> value), each grouped one put into its group."""
        settings = cls._settings()
        unknown = set(values) - {s.name for s in settings}
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
        own: dict[str, Any] = {}
        grouped: dict[str, dict[str, Any]] = {name: {} for name in cls._groups()}
        for s in settings:
            if s.name in values:
                (own if s.group is None else grouped[s.group])[s.name] = values[s.name]
        return cls(**own, **{name: kind(**grouped[name]) for name, kind in cls._groups().items()})

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, prog: str | None = None) -> Self:
        parser = argparse.ArgumentParser(prog=prog, description=cls.__doc__)
        cls.add_arguments(parser)
        namespace = parser.parse_args(argv)
        try:
            return cls.from_env(**vars(namespace))
        except ValueError as exc:
            parser.error(str(exc))
            raise  # unreachable: parser.error exits

    def validate(self) -> None:
        """Raises ValueError on an impossible setting: each group's own checks, then the subclasses' (they
        extend it; a check across groups belongs there)."""
        for name in self._groups():
            getattr(self, name).validate()

    def describe(self) -> dict[str, object]:
        """The settings that shape what a user hears and how fast, for the reports of the demo and the
        benchmarks (what they measured). Subclasses name theirs."""
        return {}


@dataclasses.dataclass
class ServerConfig(Config):
    """Settings that every gRPC service shares."""

    host: str = setting("0.0.0.0", "Address the gRPC server binds.")
    port: int = setting(0, "gRPC port.")
    metrics_port: int = setting(0, "Port of the Prometheus /metrics HTTP endpoint; 0 turns it off.")
    log_level: str = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")
    log_format: str = setting("text", "Log format: 'text' for people, 'json' for log collectors.")
    shutdown_grace_s: float = setting(
        10.0, "On SIGTERM the server takes no new streams; in-flight ones may run this long before they are cancelled."
    )
    max_streams: int = setting(64, "Concurrent streams served; past it, new streams get RESOURCE_EXHAUSTED.")
    max_connection_age_s: float = setting(
        0.0,
        "Ask clients to reconnect after this long (GOAWAY), so that they re-resolve DNS and spread over new"
        " replicas; streams already open run to their end. 0: never.",
    )
    tls_cert_file: str = setting(
        "", "PEM certificate (chain) the gRPC port serves TLS with; needs tls_key_file. Empty: plaintext."
    )
    tls_key_file: str = setting("", "PEM private key of tls_cert_file.")
    tls_client_ca_file: str = setting(
        "", "PEM CA bundle: clients must present a certificate it signed (mTLS). Needs tls_cert_file. Empty: no."
    )
    health_port: int = setting(
        0,
        "With TLS: a plaintext port that answers grpc.health.v1 checks only, for probes that cannot speak TLS"
        " (the kubelet's gRPC probes). 0: none.",
    )

    def validate(self) -> None:
        super().validate()
        for name in ("port", "metrics_port", "health_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be a port number, got {getattr(self, name)}")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if self.log_format not in {"text", "json"}:
            raise ValueError(f"log_format must be 'text' or 'json', got {self.log_format!r}")
        if self.max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self._validate_tls()

    def _validate_tls(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        # Without TLS the gRPC port itself answers plaintext health checks.
        if self.health_port and not self.tls_cert_file:
            raise ValueError("health_port is for TLS servers only: the plaintext gRPC port serves health checks")
        if self.health_port and self.health_port == self.port:
            raise ValueError("health_port must differ from port")

    @property
    def tls_mode(self) -> str:
        """'mTLS', 'TLS' or 'plaintext': how the gRPC port is served."""
        if self.tls_client_ca_file:
            return "mTLS"
        return "TLS" if self.tls_cert_file else "plaintext"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
