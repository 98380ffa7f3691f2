"""Gateway settings: a TOML file plus command-line overrides, validated once at start.

Every subcommand takes ``--config FILE`` and ``--data-dir DIR``; ``serve`` also
takes ``--listen``, ``--upstream`` and ``--admin-listen``. Flags win over the file,
the file wins over the defaults below.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")
# Settings that may also come from the environment (between the file and the flags):
# a database password need not be written into the config file.
ENV_SETTINGS = {"database_url": "DLP_GATEWAY_DATABASE_URL"}


class ConfigError(ValueError):
    """The configuration file or a flag holds an invalid value."""


@dataclass(slots=True)
class Config:
    listen: str = "127.0.0.1:10025"
    upstream: str = "127.0.0.1:10026"  # "HOST:PORT" or "maildir:PATH"
    admin_listen: str = "127.0.0.1:8025"
    admin_base_url: str = ""  # default: http://{admin_listen}
    data_dir: Path = Path("./data")
    patterns_dir: Path | None = None  # None: the bundled patterns/
    allowed_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    internal_domains: list[str] = field(default_factory=list)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_connections: int = 100
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_auth: bool = False
    scan_timeout_seconds: float = 60.0
    scan_max_memory_mb: int = 2048  # memory one scan may add (0: no cap); as `scan --max-memory`
    scan_workers: int = 0  # 0: one per CPU, at most 4
    monitor_mode: bool = False
    gateway_address: str = "dlp-gateway@localhost"
    hostname: str = "dlp-gateway"
    upstream_timeout_seconds: float = 30.0
    queue_max_attempts: int = 30
    queue_retry_base_seconds: float = 30.0
    queue_retry_max_seconds: float = 3600.0
    # Admin page (issue 4)
    session_idle_minutes: int = 30
    lockout_failures: int = 5
    lockout_minutes: int = 15
    escalate_hours: float = 24.0
    expire_hours: float = 72.0
    # Operator tuning (issue 11)
    patterns_poll_seconds: float = 2.0  # 0: reload on SIGHUP only
    retain_passed_days: int = 0  # 0: passed mail is not kept (replay sees held mail only)
    retain_max_mb: int = 1024
    # Approval routing / sender side (issue 9)
    timezone: str = "Asia/Tokyo"  # every time people read: notices, pages, CSV
    # Hardening (issue 10)
    sender_domains: list[str] = field(default_factory=list)  # empty: internal_domains
    trusted_relays: list[str] = field(default_factory=list)  # may pass XFORWARD / AUTH=
    # may pass XFORWARD NAME/ADDR/PROTO/HELO/SOURCE (the original client; never an identity)
    xforward_hosts: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    require_auth_for_release: bool = False  # holds of unauthenticated senders stay held
    max_recipients: int = 1000
    max_connections_per_client: int = 20
    smtp_timeout_seconds: float = 300.0
    smtp_idle_before_mail_seconds: float = 30.0
    bare_line_endings: str = "normalize"  # normalize | reject (bare CR / bare LF in DATA)
    scan_max_attempts: int = 3  # scans that kill their worker, then held as corrupt
    duplicate_window_seconds: float = 86400.0
    small_mail_bytes: int = 262144  # at most this size: the small-mail scan lane
    inline_scan_bytes: int = 16384  # single-part text/plain mail up to this: scanned in-process
    audit_key_file: Path | None = None  # default: DATA_DIR/audit.key (0600)
    audit_anchor_file: Path | None = None  # default: DATA_DIR/audit.anchor
    # Several nodes (issue 12): "" keeps SQLite in data_dir; postgresql://user@host/db
    # puts held mail, the queue, users, sessions, audit log and spooled bytes there.
    database_url: str = ""

    # -- derived values -------------------------------------------------
    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen)

    @property
    def admin_host_port(self) -> tuple[str, int]:
        return split_host_port(self.admin_listen)

    @property
    def upstream_maildir(self) -> Path | None:
        """The Maildir path when upstream is ``maildir:PATH``, else None."""
        if self.upstream.startswith("maildir:"):
            return Path(self.upstream[len("maildir:") :])
        return None

    @property
    def upstream_host_port(self) -> tuple[str, int]:
        return split_host_port(self.upstream)

    @property
    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.trusted_relays]

    @property
    def xforward_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.xforward_hosts]

    @property
    def allowed_sender_domains(self) -> list[str]:
        """Domains an envelope sender must belong to; empty list: any domain."""
        return list(self.sender_domains or self.internal_domains)

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def audit_anchor_path(self) -> Path:
        return self.audit_anchor_file or self.data_dir / "audit.anchor"

    @property
    def workers(self) -> int:
        return self.scan_workers or max(1, min(4, os.cpu_count() or 1))

    def validate(self) -> Config:
        """Check every field once; raise ConfigError naming the bad one."""
        for name in ("listen", "admin_listen"):
            _check(name, lambda v: split_host_port(v), getattr(self, name))
        if self.upstream_maildir is None:
            _check("upstream", split_host_port, self.upstream)
        _check("allowed_networks", lambda _v: self.networks, self.allowed_networks)
        if not self.admin_base_url:
            host, port = self.admin_host_port
            shown = f"[{host}]" if ":" in host else host
            self.admin_base_url = f"http://{shown}:{port}"
        self.admin_base_url = self.admin_base_url.rstrip("/")
        self.internal_domains = [d.lower().lstrip("@") for d in self.internal_domains]
        self.sender_domains = [d.lower().lstrip("@") for d in self.sender_domains]
        _check("trusted_relays", lambda _v: self.trusted_networks, self.trusted_relays)
        _check("xforward_hosts", lambda _v: self.xforward_networks, self.xforward_hosts)
        if self.bare_line_endings not in ("normalize", "reject"):
            raise ConfigError("bare_line_endings must be normalize or reject")
        positive = (
            "max_message_bytes", "max_connections", "scan_timeout_seconds",
            "session_idle_minutes", "lockout_failures", "lockout_minutes",
            "escalate_hours", "expire_hours", "queue_max_attempts",
            "max_recipients", "max_connections_per_client", "smtp_timeout_seconds",
            "smtp_idle_before_mail_seconds", "scan_max_attempts",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.patterns_poll_seconds < 0 or self.retain_passed_days < 0:
            raise ConfigError("patterns_poll_seconds and retain_passed_days must be >= 0")
        if self.retain_max_mb <= 0:
            raise ConfigError("retain_max_mb must be positive")
        if self.scan_workers < 0:
            raise ConfigError("scan_workers must be >= 0")
        if self.scan_max_memory_mb < 0:
            raise ConfigError("scan_max_memory_mb must be >= 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together")
        if self.require_auth and not self.tls_cert:
            raise ConfigError("require_auth needs tls_cert/tls_key (AUTH only after STARTTLS)")
        from dlp_gateway.timefmt import zone

        _check("timezone", zone, self.timezone)
        if "@" not in self.gateway_address:
            raise ConfigError("gateway_address must be a mail address")
        if self.database_url and not self.database_url.startswith(DATABASE_URL_SCHEMES):
            raise ConfigError("database_url must be empty (SQLite) or postgresql://...")
        return self


def split_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:10025"`` / ``"[::1]:25"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _check(name: str, fn: Any, value: Any) -> None:
    try:
        fn(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: {exc}") from exc


_PATH_FIELDS = {"data_dir", "patterns_dir", "tls_cert", "tls_key", "audit_key_file",
                "audit_anchor_file"}


def load_config(path: Path | str | None = None, **overrides: Any) -> Config:
    """Defaults < TOML file (``[gateway]`` table or top level) < non-None overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        values.update(data.get("gateway", data))
    values.update({k: os.environ[v] for k, v in ENV_SETTINGS.items() if os.environ.get(v)})
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    for name in _PATH_FIELDS & set(values):
        if values[name] is not None and values[name] != "":
            values[name] = Path(values[name])
        else:
            values[name] = None if name != "data_dir" else Path("./data")
    return Config(**values).validate()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--data-dir DIR``, shared by every subcommand."""
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default ./data)")
    parser.add_argument(
        "--database-url", metavar="URL",
        help="PostgreSQL database shared by several nodes, postgresql://user@host/db "
             "(default: SQLite in the data directory; env DLP_GATEWAY_DATABASE_URL)",
    )


def require_database(config: Config) -> Config:
    """Refuse a data directory without a database, for commands that read existing data.

    A mistyped ``--data-dir`` must not create an empty database and then report "no
    mail" or "the audit log is intact (0 entries)".
    """
    from dlp_gateway.store.db import DB_FILENAME

    if config.database_url:
        return config  # PostgreSQL: opening it says whether it is there
    path = config.data_dir / DB_FILENAME
    if not path.is_file():
        raise ConfigError(
            f"データベースがありません: {path}（--data-dir / --config を確認してください）"
            f" (no database in the data directory)"
        )
    return config


def config_from_args(args: argparse.Namespace, **extra: Any) -> Config:
    """Build the Config from a parsed namespace (common flags plus ``extra``)."""
    return load_config(
        getattr(args, "config", None), data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None), **extra
    )
