"""Database URLs as leadq takes them (is one given, how it is shown, where its password comes
from), apart from pipelines.io.database so the params loader and the table reader can tell a URL
from a path without importing the database code."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from leadq.errors import BadInputError

# dialect[+driver]:// — a Windows path (C:\…) or a relative file never looks like this.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\+[A-Za-z0-9_]+)?://")
_FILE_SCHEMES = ("file://", "s3://", "gs://", "hdfs://", "abfs://", "http://", "https://")


def is_database_url(value: object) -> bool:
    """True for a SQLAlchemy database URL (postgresql://…, sqlite:///…, duckdb:///…)."""
    text = str(value)
    return bool(_URL.match(text)) and not text.lower().startswith(_FILE_SCHEMES)


def safe_url(url: str) -> str:
    """The URL as it may be shown or logged: the password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        # libpq also takes the password as a query parameter (?password=…).
        secret = {k: "***" for k in parsed.query if k.lower() in ("password", "sslpassword")}
        if secret:
            parsed = parsed.update_query_dict(secret)
        return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL: show only its scheme
        return url.split("://", 1)[0] + "://***"


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(url: str) -> str:
    """`${NAME}` in a URL replaced by the environment variable's value (URL-quoted), so a
    params file names a password without holding it: `postgresql://leadq:${WAREHOUSE_PASSWORD}
    @host/db`. Expanded only when connecting; params, logs and manifests keep `${NAME}`."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise BadInputError(f"{safe_url(url)}: the environment variable {name} named in the "
                                "database URL is not set")
        return quote(os.environ[name], safe="")

    return _ENV.sub(value, url)


def has_password(url: str) -> bool:
    """Whether the URL holds a password itself (not a `${NAME}` reference)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not parseable: engine_for reports it
        return False
    secrets_in_query = [v for k, v in parsed.query.items()
                        if k.lower() in ("password", "sslpassword")]
    return any(v and not _ENV.fullmatch(str(v)) for v in [parsed.password, *secrets_in_query])
