"""The PostgreSQL database URL Phoenix stores in (COGSCOPE_DATABASE_URL): its form, its check, and its password.

`check_database_url` reads the URL (a wrong one ends in one line that says what to fix); `check_database` connects
to the database once, as Phoenix will, before cogscope starts Phoenix on it (Phoenix itself would spend 30 s and then
report a failed migration). The password is never shown: `shown_database_url` and `without_password` blank it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .errors import PhoenixStartFailed

DATABASE_URL_ENV = "COGSCOPE_DATABASE_URL"
# how a good URL looks, in words the output redaction leaves alone (it blanks any `scheme://user:X@`)
DATABASE_URL_FORM = "postgresql://USER@HOST:5432/DATABASE (USER:PASSWORD@ when the server wants a password)"
BLANK = "[REDACTED]"

_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "postgresql+asyncpg": "postgresql"}
_SECRET_QUERY_KEYS = {"password", "pass", "passwd", "pwd", "sslpassword"}


def shown_database_url(url: str) -> str:
    """The URL with its password blanked (in the user:PASSWORD@ part and in a ?password= parameter)."""
    try:
        parts = urlsplit(url.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":" + BLANK
            netloc = f"{userinfo}@{hostport}"
        query = urlencode(
            [(k, BLANK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, True)],
            safe="[]/:",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "(an unreadable URL)"


def _password_forms(url: str) -> list[str]:
    """The password of a database URL as it may appear in a text (raw and percent-decoded), longest first."""
    try:
        parts = urlsplit(url.strip())
        found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query, True) if k.lower() in _SECRET_QUERY_KEYS]
    except ValueError:
        return []
    forms = {f for p in found if p for f in (p, unquote(p), quote(unquote(p), safe=""))}
    return sorted(forms, key=len, reverse=True)


def without_password(text: str, url: str | None) -> str:
    """`text` with the password of the database URL `url` blanked (a driver's message may repeat it)."""
    for form in _password_forms(url or ""):
        text = text.replace(form, BLANK)
    return text


def check_database_url(url: str) -> str:
    """The PostgreSQL URL Phoenix is given (`postgres://` spelt `postgresql://`), or ValueError with one line
    that says what to fix and never the password."""
    raw = url.strip()
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        what = f"starts with {scheme + ':'!r}" if sep and scheme.isidentifier() else "is not a URL"
        raise ValueError(
            f"{DATABASE_URL_ENV} {what}; Phoenix stores in PostgreSQL only: use {DATABASE_URL_FORM}, "
            "or unset it to keep Phoenix's SQLite in the data dir"
        )
    normal = f"{_SCHEMES[scheme.lower()]}://{rest}"
    shown = shown_database_url(normal)
    try:
        parts = urlsplit(normal)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{DATABASE_URL_ENV}={shown} has a bad host or port; use {DATABASE_URL_FORM}") from None
    if not parts.path.strip("/"):
        raise ValueError(f"{DATABASE_URL_ENV}={shown} names no database; add it after the port: {DATABASE_URL_FORM}")
    return normal


_T = TypeVar("_T")


def _run_async(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to its end from sync code, in a thread of its own (the caller may be inside an event loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    thread = threading.Thread(target=target, name="cogscope-db-check", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Database:
    """A checked database URL, and how messages name it (never with its password)."""

    url: str
    shown: str  # the URL, password blanked
    where: str  # host:port
    name: str  # the database
    user: str | None
    host: str | None

    @classmethod
    def of(cls, url: str) -> _Database:
        parts = urlsplit(url)
        where = f"{parts.hostname or 'the local socket'}{f':{parts.port}' if parts.port else ''}"
        return cls(url, shown_database_url(url), where, unquote(parts.path.strip("/")), parts.username, parts.hostname)


@dataclass(frozen=True)
class _Rights:
    migrated: bool  # Phoenix's tables are there already
    may_create: bool  # the user may create tables in the current schema


async def _probe(url: str, timeout: float) -> _Rights:
    """Connect once and ask what Phoenix's migration needs."""
    import asyncpg

    connection = await asyncpg.connect(url, timeout=timeout)
    try:
        migrated = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        may_create = await connection.fetchval("SELECT has_schema_privilege(current_schema(), 'CREATE')")
        return _Rights(bool(migrated), bool(may_create))
    finally:
        await connection.close(timeout=timeout)


def check_database(url: str, timeout: float = 10.0) -> None:
    """Connect to the PostgreSQL database once, as Phoenix will; PhoenixStartFailed with one line that says what to
    fix when it cannot (unreachable server, wrong user or password, no such database, no right to create tables)."""
    try:
        import asyncpg
    except ImportError:
        raise PhoenixStartFailed(
            "PostgreSQL support is not installed: pip install 'arize-phoenix[pg]' (scripts/bootstrap.sh does)"
        ) from None
    try:
        url = check_database_url(url)
    except ValueError as e:
        raise PhoenixStartFailed(str(e)) from None
    db = _Database.of(url)
    where, fix = db.where, f"fix {DATABASE_URL_ENV} ({db.shown})"
    try:
        rights = _run_async(lambda: _probe(url, timeout))
    except asyncpg.InvalidPasswordError:
        raise PhoenixStartFailed(f"PostgreSQL at {where} refused the password of user {db.user!r}; {fix}") from None
    except asyncpg.InvalidCatalogNameError:
        raise PhoenixStartFailed(
            f"PostgreSQL at {where} has no database {db.name!r}: create it (createdb {db.name}) or {fix}"
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as e:
        raise PhoenixStartFailed(
            f"PostgreSQL at {where} refused the connection ({without_password(str(e), url)}); {fix}"
        ) from None
    except asyncpg.PostgresError as e:
        raise PhoenixStartFailed(f"PostgreSQL at {where}: {without_password(str(e), url)}; {fix}") from None
    except (TimeoutError, asyncio.TimeoutError):
        raise PhoenixStartFailed(f"PostgreSQL at {where} did not answer within {timeout:.0f} s; {fix}") from None
    except socket.gaierror:
        raise PhoenixStartFailed(f"the database host {db.host!r} is unknown; {fix}") from None
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else without_password(str(e), url)
        raise PhoenixStartFailed(f"cannot reach PostgreSQL at {where} ({reason}); start it or {fix}") from None
    except (ValueError, asyncpg.InterfaceError) as e:
        raise PhoenixStartFailed(
            f"{DATABASE_URL_ENV}={db.shown} is not usable ({without_password(str(e), url)})"
        ) from None
    if not rights.migrated and not rights.may_create:
        raise PhoenixStartFailed(_no_create_right(db))


def _no_create_right(db: _Database) -> str:
    return (
        f"user {db.user!r} may not create tables in database {db.name!r} at {db.where} (PostgreSQL 15 and "
        "later no longer let every user create in schema public): make the user the database's owner "
        f"(ALTER DATABASE {db.name} OWNER TO {db.user}) or GRANT CREATE ON SCHEMA public TO {db.user}"
    )
