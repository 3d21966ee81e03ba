"""Settings: a TOML file overridden by SHORTAGE_WATCH_* environment variables.

Only `cli.py` calls `load_settings`; everything else receives the Settings object.
Relative paths are resolved against the working directory of the process.
"""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from shortage_watch.domain.policy import Policy, PolicyError, policy_from_toml
from shortage_watch.redact import mask_url

_URL_SCHEME = re.compile(r"(?P<backend>\w+)(?:\+\w+)?://")


class SettingsError(Exception):
    """Settings that cannot be used; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _read_secret_file(path: Path | None, current: SecretStr | None, key: str) -> SecretStr | None:
    if path is None:
        return current
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"{key}: cannot read secret file {path}: {exc.strerror}") from None


class DatabaseSettings(Section):
    url: str = "sqlite:///var/shortage_watch.db"
    url_file: Path | None = Field(None, description="read the URL (with its password) from this file instead")

    @model_validator(mode="before")
    @classmethod
    def _url_from_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("url_file"):
            secret = _read_secret_file(Path(data["url_file"]), None, "url_file")
            assert secret is not None
            data = {**data, "url": secret.get_secret_value()}
        return data

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        # The scheme is checked by hand, as sqlalchemy's make_url reads it (`backend+driver://`):
        # importing sqlalchemy here would cost every command, `deadline` too, a third of its start-up.
        # The port is checked too (the standard library reads it); the rest of the URL is
        # parsed when a command opens the database.
        scheme = _URL_SCHEME.match(value)
        if scheme is None:
            raise ValueError("not a database URL (expected sqlite:///path or postgresql+psycopg://…)")
        backend = scheme["backend"]
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")
        if backend == "postgresql":
            try:
                urlsplit(value).port  # noqa: B018 (reading it checks it is a number in 0-65535)
            except ValueError:
                raise ValueError("the port is not a number from 0 to 65535") from None
        return value


class CalendarSettings(Section):
    working_days: int = Field(5, ge=1, le=60, description="N in 'report within N working days'")
    cutoff: time | None = Field(None, description="deadline time of day; None means end of day")
    overrides_dir: Path = Path("config/calendar")


class DirectorySettings(Section):
    regions: Path | None = None
    contacts: Path | None = None
    distributors: Path | None = None
    hospitals: Path | None = None
    operations_email: str | None = Field(None, description="last fallback for alerts with no recipient")


class SourceSettings(Section):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["http", "inbox"]
    record_kind: Literal["stoppage_notice", "distributor_report", "shortage_report", "auto"] = "auto"
    url: str | None = None
    path: Path | None = None
    interval: int = Field(300, ge=1)
    field_map: dict[str, str] = Field(default_factory=dict)
    auth_header: str = "Authorization"
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    total_timeout: float = Field(120.0, gt=0, description="http: a whole request (headers and body) must finish within this")
    max_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    retries: int = Field(3, ge=0, le=10)
    verify_tls: bool = True
    settle_seconds: float = Field(5.0, ge=0, description="inbox: ignore files modified more recently")
    quiet_working_days: int = Field(5, ge=1, le=60, description="delivered nothing for this long: a quiet reporter")

    @model_validator(mode="after")
    def _location(self) -> "SourceSettings":
        if self.type == "http" and not self.url:
            raise ValueError("an http source needs 'url'")
        if self.type == "inbox" and self.path is None:
            raise ValueError("an inbox source needs 'path'")
        self.auth_token = _header_token(_read_secret_file(self.auth_token_file, self.auth_token, "auth_token_file"))
        return self


def _header_token(token: SecretStr | None) -> SecretStr | None:
    """The token trimmed of the spaces a paste brings; refused (never quoted) if no HTTP header can carry it."""
    if token is None:
        return None
    value = token.get_secret_value().strip()
    if not value.isprintable() or not value.isascii():
        raise ValueError("auth_token: contains a control or non-ASCII character, which no HTTP header can carry (the value is not shown)")
    return SecretStr(value)


class IntakeSettings(Section):
    max_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest file `submit` reads")
    max_unpacked_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024,
                                    description="largest XLSX workbook once uncompressed")
    max_cell_chars: int = Field(32767, ge=100, description="longest text of one spreadsheet cell")


class EscalationSettings(Section):
    policy: Path = Path("config/escalation.toml")
    regional_hospitals: int = Field(3, ge=1, description="K hospitals of one city make a regional shortage")
    regional_window_days: int = Field(7, ge=1, description="... reporting within W days")
    regional_escalate_working_days: int = Field(10, ge=1, description="open N working days: to the province")
    sweep_batch: int = Field(500, ge=1, le=10000, description="due obligations the sweep claims and steps per transaction (cases: reads per query)")
    retry_minutes: int = Field(15, ge=1, description="a row that failed in the sweep is retried this much later")


class MailSettings(Section):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    transport: Literal["file", "smtp"] = "file"
    from_: str = Field("shortage-watch@localhost", alias="from")
    reply_to: str | None = None
    report_inbox: str | None = Field(None, description="where distributors upload report files (e.g. an SFTP folder); told in their mail")
    language: Literal["zh-CN", "en"] = "zh-CN"
    file_dir: Path = Path("var/mail")
    templates_dir: Path | None = None
    working_hours_start: time = time(8, 30)
    working_hours_end: time = time(17, 30)
    digest_time: time = time(8, 0)
    monthly_time: time = time(9, 0)
    batch_size: int = Field(50, ge=1, le=1000)
    max_attempts: int = Field(8, ge=1)
    group_wait: int = Field(60, ge=0, le=3600, description="seconds a bureau's group waits for more items before it goes")
    distributor_group_wait: int = Field(0, ge=0, le=3600, description="the same for distributors (0: a submission's receipts go at once, as one)")
    group_attach_over: int = Field(20, ge=1, description="a grouped message with more items than this carries them as XLSX too")
    group_max_items: int = Field(500, ge=2, le=5000, description="the most items one grouped message lists")
    item_url: str | None = Field(None, description="link to an item in the dashboard, e.g. https://sw.example.gov.cn/items/{case_number}")

    @model_validator(mode="after")
    def _working_hours_in_order(self) -> "MailSettings":
        # With end <= start no instant is ever within working hours: bureau mail would wait forever.
        if self.working_hours_end <= self.working_hours_start:
            raise ValueError(
                f"working_hours_end {self.working_hours_end:%H:%M} must be later than working_hours_start {self.working_hours_start:%H:%M}"
            )
        return self


class SilenceSettings(Section):
    max_days: int = Field(30, ge=1, le=366, description="a silence may last at most this many days")


class QuietSettings(Section):
    """Reporters that went quiet (sources have their own `quiet_working_days`)."""

    sentinel_hospitals: list[str] = Field(default_factory=list, description="hospital codes expected to report regularly")
    sentinel_working_days: int = Field(5, ge=1, le=60, description="a sentinel silent this long is listed")
    dead_letter_working_days: int = Field(2, ge=1, le=60, description="a distributor whose mail is dead this long is listed")


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = Field(None, description="CA bundle for a server signed by a private CA")
    timeout: float = Field(30.0, gt=0)
    rate_per_minute: int = Field(600, ge=1)

    @model_validator(mode="after")
    def _password_from_file(self) -> "SmtpSettings":
        self.password = _read_secret_file(self.password_file, self.password, "password_file")
        return self


class DaemonSettings(Section):
    sweep_interval: int = Field(60, ge=1)
    deliver_interval: int = Field(30, ge=1)
    heartbeat_interval: int = Field(30, ge=1)
    lease_seconds: int = Field(120, ge=5)
    retention_days: int = Field(400, ge=1)
    http_enabled: bool = False
    http_host: str = "127.0.0.1"
    http_port: int = Field(9464, ge=1, le=65535)
    max_source_failures: int = Field(5, ge=1)
    housekeeping_time: time = Field(time(3, 30), description="local time of the daily pruning and calendar check")
    misfire_grace_seconds: int = Field(3600, ge=1, description="a timer run late by up to this much still runs")
    shutdown_seconds: float = Field(8.0, gt=0, le=60, description="on SIGTERM, wait this long for running jobs")


class WebSettings(Section):
    """The distributor portal and token API (web/)."""

    enabled: bool = Field(True, description="`run` also serves the portal and API")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = Field("http://127.0.0.1:8080", description="the portal's address as users reach it; used in mail links")
    session_secret_file: Path = Field(Path("var/web_session_secret"),
                                      description="signs session cookies and CSRF tokens; created (0600) when missing")
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60, description="a login lasts this long")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest upload or API body")
    api_requests_per_minute: int = Field(60, ge=1, description="per API token; more answers 429 with Retry-After")
    login_failures_allowed: int = Field(5, ge=1, description="failed logins per account and address before a pause")
    login_pause_minutes: int = Field(15, ge=1, description="... counted over, and paused for, this long")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHORTAGE_WATCH_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    timezone: str = "Asia/Shanghai"
    database: DatabaseSettings = DatabaseSettings()
    calendar: CalendarSettings = CalendarSettings()
    directory: DirectorySettings = DirectorySettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    intake: IntakeSettings = IntakeSettings()
    escalation: EscalationSettings = EscalationSettings()
    mail: MailSettings = MailSettings()
    silences: SilenceSettings = SilenceSettings()
    quiet: QuietSettings = QuietSettings()
    smtp: SmtpSettings = SmtpSettings()
    daemon: DaemonSettings = DaemonSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _unique_source_names(self) -> "Settings":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: duplicate name {dupes[0]!r}")
        return self

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, every secret replaced by '**********'."""
        data = self.model_dump(mode="json", by_alias=True)
        data["database"]["url"] = mask_url(self.database.url)
        for source in data["sources"]:
            if source.get("url"):
                source["url"] = mask_url(source["url"])
        return data


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return lines


def load_policy(path: Path) -> Policy:
    """Read the escalation policy file (`escalation.policy`) and validate it; raises PolicyError naming
    the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return policy_from_toml(text, str(path))


def load_settings(config_path: Path | None, explicit: bool = False) -> Settings:
    """Read `config_path` (TOML) under the environment; raises SettingsError listing each bad key.

    A missing file is an error when the operator named it (`explicit`), otherwise the
    built-in defaults apply.
    """
    if config_path is not None and not config_path.is_file():
        if explicit:
            raise SettingsError([f"config: file not found: {config_path}"])
        config_path = None
    if config_path is not None:
        try:
            tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise SettingsError([f"config: {config_path} is not valid TOML: {exc}"]) from None

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_path))
            return tuple(sources)

    try:
        loaded = _FromFile()
    except ValidationError as exc:
        raise SettingsError(_problems(exc)) from None
    except ValueError as exc:  # a malformed environment value pydantic-settings could not decode
        raise SettingsError([f"environment: {exc}"]) from None
    return loaded
