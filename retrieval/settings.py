"""The one home of configuration: DOCENT_* environment variables over an optional TOML file.

The TOML file is DOCENT_CONFIG if set, else `docent.toml` in the data home when present (the
home given on the command line, else DOCENT_HOME, else the default).
Every setting has one name, used alike by the app and the CLI: the field `home` is
DOCENT_HOME in the environment and `home = "..."` in the file.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from retrieval.answer.auto import DEFAULT_PROBE
from retrieval.answer.backends import BACKEND_NAMES
from retrieval.embed.embedder import BACKENDS as EMBEDDING_BACKENDS
from retrieval.search import FUSIONS, MODES

ROLES = ("reader", "editor", "admin")  # each may do what the one before may, and more (webapp/access.py)

log = logging.getLogger(__name__)


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "docent"


def prepare_home(home: str | Path) -> Path:
    """The data home, created private (0700: the access database, the collections and the kept
    files are for Docent's own user), or made so, with a log line, when others could read it."""
    home = Path(home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        try:
            home.chmod(0o700)
            log.warning("the data home %s was open to other users (mode %o); it is now 0700", home, mode)
        except OSError as exc:  # not ours to change: say so, and go on
            log.warning("the data home %s is open to other users (mode %o) and cannot be closed: %s", home, mode, exc)
    return home


_home_given: ContextVar[str | None] = ContextVar("home_given", default=None)  # --home, when given


def _config_file() -> Path | None:
    if os.environ.get("DOCENT_CONFIG"):
        return Path(os.environ["DOCENT_CONFIG"])
    candidate = Path(_home_given.get() or os.environ.get("DOCENT_HOME") or default_home()).expanduser() / "docent.toml"
    return candidate if candidate.is_file() else None


COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SettingsError(ValueError):
    """The settings are invalid; the message names each bad setting."""


class UserSpec(BaseModel):
    """A user defined in the settings file: `[users.alice]` with role, groups and password_hash."""

    model_config = ConfigDict(extra="forbid")
    role: Literal[ROLES] = "reader"
    groups: list[str] = Field(default_factory=list)
    password_hash: str | None = Field(None, pattern=r"^scrypt\$", description="from `docent users hash`")


class AccessSpec(BaseModel):
    """`[collection_access.NAME]`: the users and groups that may see a collection."""

    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    # An empty variable is an unset one (compose passes `${VAR:-}` through as "").
    model_config = SettingsConfigDict(
        env_prefix="DOCENT_", extra="forbid", validate_default=True, env_ignore_empty=True
    )

    home: Path = Field(default_factory=default_home, description="data home: one folder per collection")
    collection: str = Field("default", pattern=COLLECTION_NAME_PATTERN, description="default collection")
    llm: Literal[BACKEND_NAMES] = Field(
        BACKEND_NAMES[0],
        description="answer backend; auto: a local OpenAI-compatible model server when one answers, else extractive",
    )
    llm_probe: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PROBE),
        description="host:port addresses DOCENT_LLM=auto asks for a model server (comma-separated)",
    )
    openai_base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    openai_model: str = Field("gpt-4o-mini", description="model name sent to the OpenAI-compatible endpoint")
    openai_api_key: SecretStr | None = Field(None, description="key for the endpoint (local servers need none)")
    llamacpp_model: Path | None = Field(None, description="path of a GGUF file for the llamacpp backend")
    llm_timeout: float = Field(60.0, gt=0, description="seconds to wait for the LLM before giving up")
    llm_max_tokens: int = Field(512, ge=16, le=8192)
    llm_temperature: float = Field(0.1, ge=0, le=2)
    llm_context_tokens: int = Field(4096, ge=512, description="llamacpp context window")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="private or loopback hosts the crawler may reach (comma-separated)"
    )
    fetch_timeout: float = Field(15.0, gt=0, description="seconds to wait for a web server")
    fetch_total_timeout: float = Field(
        60.0, gt=0, description="seconds one web page (or sitemap) may take in all, however slowly it arrives"
    )
    max_json_bytes: int = Field(1 << 20, ge=1024, description="the largest JSON body the HTTP API reads")
    max_upload_bytes: int = Field(200 << 20, ge=1024, description="the largest file one upload may carry")
    max_upload_files: int = Field(100, ge=1, le=10_000, description="the most files one upload request may carry")
    max_file_chunks: int = Field(
        50_000, ge=1, description="the most passages one file may become (SEC filings make about 4.6 a page)"
    )
    max_file_characters: int = Field(
        64 << 20, ge=1000, description="the most characters of text one file may hold (a 50 MB text file passes)"
    )
    max_unpacked_bytes: int = Field(
        64 << 20,
        ge=1 << 20,
        description="the most an Office file's XML parts may unpack to (its pictures and embedded files are never read)",
    )
    max_image_pixels: int = Field(
        100_000_000, ge=1_000_000, description="the most pixels of one image, or one page of it (A4 at 600 dpi: 35 M)"
    )
    max_image_frames: int = Field(1000, ge=1, description="the most frames (pages) of one image file (a TIFF)")
    rate_limit_per_minute: int = Field(
        600, ge=0, description="HTTP API requests one key (or one address, sign-in off) may make a minute; 0: no limit"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="how the servers log: text lines, or JSON lines with each request's id, user and route"
    )
    app_metrics_address: str | None = Field(
        None,
        pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$",
        description="HOST:PORT where the app's process serves Prometheus /metrics (the API serves its own); unset: none",
    )
    metrics_key: SecretStr | None = Field(
        None, description="when set, GET /metrics needs it as a bearer token; unset: /metrics is open like /health"
    )
    crawl_max_pages: int = Field(1000, ge=1, description="default page cap of a crawl")
    crawl_max_sitemaps: int = Field(1000, ge=1, description="sitemap files a crawl reads at most")
    crawl_max_sitemap_urls: int = Field(200_000, ge=1, description="page URLs a crawl reads from sitemaps at most")
    crawl_concurrency: int = Field(4, ge=1, le=32, description="pages fetched at once")
    crawl_per_host: int = Field(2, ge=1, le=16, description="requests at once to one host")
    embedding_model: Path | None = Field(
        None, description="a sentence-transformers folder; default: packaged all-MiniLM-L6-v2"
    )
    device: str | None = Field(None, description="torch device for embedding; default: cuda when present, else cpu")
    embedding_backend: Literal[EMBEDDING_BACKENDS] = Field(
        "auto",
        description="auto: on a CPU, OpenVINO int8 when it passes its quality check, else OpenVINO float;"
        " torch on a GPU",
    )
    model_cache: Path | None = Field(
        None,
        description="where the exported (and int8) embedding model is kept; default: $XDG_CACHE_HOME/docent/models",
    )
    gpu_search: bool = Field(
        True,
        description="search on a GPU when one is usable (an exact copy of each collection's vectors in GPU memory)",
    )
    chunk_overlap_tokens: int = Field(40, ge=0, le=128)
    search_mode: Literal[MODES] = MODES[0]
    top_k: int = Field(5, ge=1, le=50, description="passages given to the answer backend")
    fusion: Literal[FUSIONS] = Field(FUSIONS[0], description="how hybrid search fuses its two lists")
    scope_by_name: bool = Field(
        True, description="a question that names files (ADOBE_2015_10K.pdf: 'Adobe', 'FY2015') searches them first"
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal Rank Fusion constant")
    fusion_alpha: float = Field(0.5, ge=0, le=1, description="convex fusion: weight of the vector score")
    min_relevance: float = Field(
        0.25, ge=-1, le=1, description="cosine similarity below which a passage does not count as an answer"
    )
    answer_term_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the question's naming words the best passages must hold for it to be answered",
    )
    sure_relevance: float = Field(
        0.55, ge=-1, le=1, description="cosine at which a passage answers even in other words than the question's"
    )
    auth: Literal["none", "password", "oidc"] = Field(
        "none",
        description="none: one local user, no sign-in; password: users sign in; oidc: the company's identity provider",
    )
    users: dict[str, UserSpec] = Field(
        default_factory=dict, description="users fixed by the settings (see webapp.access)"
    )
    collection_access: dict[str, AccessSpec] = Field(default_factory=dict, description="who may see each collection")
    oidc_default_role: Literal[("none",) + ROLES[:2]] = Field(
        "none", description="role of someone the identity provider signs in who is not a Docent user; none: refused"
    )
    ray_address: str | None = Field(
        None,
        description="run on this Ray cluster (auto, host:port, ray://host:port): sharded collections, ingest on"
        " Ray Data; unset: this machine alone, no Ray needed",
    )
    ray_shards: int = Field(2, ge=1, le=1024, description="shards of a collection made on a Ray cluster")
    ray_shard_cpus: float = Field(1.0, gt=0, description="cores each shard actor reserves (its search threads)")
    ray_shard_resource: str | None = Field(
        None, description="a custom Ray resource a node must offer to hold shards (nodes with the shards' disks)"
    )
    ray_shard_timeout: float = Field(
        10.0, gt=0, description="seconds a search waits for a shard; a later one leaves a partial answer, marked"
    )
    ray_embed_actors: int = Field(2, ge=1, le=1024, description="embedding actors of an ingest on Ray Data")
    app_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="the app's public address (https://docent.example.com): citations given outside the app"
        " (Slack, the OpenAI-compatible API, MCP) link to its page view; unset: only web sources are linked",
    )
    slack_bot_token: SecretStr | None = Field(
        None, description="the Slack app's bot token (xoxb-…), for `docent slack`"
    )
    slack_app_token: SecretStr | None = Field(
        None, description="the Slack app's app-level token (xapp-…) with connections:write: Socket Mode"
    )
    slack_channels: dict[str, str] = Field(
        default_factory=dict,
        description="which collection answers in each Slack channel, by channel id; others and direct messages:"
        " the default collection",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", pattern=r"^https?://[^\s]+/$", description="Slack's Web API (a stand-in in tests)"
    )
    chat_retention_days: int | None = Field(
        None, ge=1, description="saved chats unused this many days are deleted on start; unset: kept forever"
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Absolute, so that a server that changes its working directory still finds it.
        return value.expanduser().resolve()

    @field_validator("allowed_hosts", "llm_probe", mode="before")
    @classmethod
    def _split_hosts(cls, value):
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("allowed_hosts", mode="after")
    @classmethod
    def _hosts_without_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
                continue  # an address or network, IPv6 ones included
            except ValueError:
                pass
            if re.fullmatch(r"(\[[^\]]*\]|[^:\[\]/]+):\d+", entry):
                raise ValueError(
                    f"{entry!r} names a port: list the host or network alone (every port on it is allowed)"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ):
        sources = [init_settings, env_settings]
        config = _config_file()
        if config is not None:
            if not config.is_file():
                raise SettingsError(f"DOCENT_CONFIG points to {config}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


def load_settings(**overrides) -> Settings:
    """Reads and validates the settings; raises SettingsError with every problem named."""
    token = _home_given.set(str(overrides["home"]) if overrides.get("home") else None)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid Docent settings: {problems}") from None
    finally:
        _home_given.reset(token)
