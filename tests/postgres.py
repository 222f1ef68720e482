"""A throwaway PostgreSQL cluster on loopback, for the tests and the benches: Debian's own server binaries, run
as the `postgres` user when we are root (initdb refuses root), in a temporary folder that is removed on stop.

    with TempPostgres() as pg:
        url = pg.create_database("phoenix")   # postgresql://cogscope:PASSWORD@127.0.0.1:PORT/phoenix
        pg.scalar("phoenix", "SELECT count(*) FROM spans")

The server listens on 127.0.0.1 only (TCP, password required: scram-sha-256) and on a Unix socket in its own
folder (trust, for the administrator's psql). `scripts/bootstrap.sh --test` installs Debian's `postgresql` when
no `/usr/lib/postgresql/*/bin/initdb` exists.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

USER = "cogscope"
PREFIX = "cogscope-pg-"
# A throwaway cluster need not survive a crash: no fsync makes Phoenix's migrations and writes much faster.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresMissing(RuntimeError):
    pass


def bin_dir() -> Path:
    """The newest Debian PostgreSQL's binaries (/usr/lib/postgresql/N/bin), or PostgresMissing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    if not found:
        raise PostgresMissing(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/bootstrap.sh --test "
            "or apt-get install postgresql"
        )
    return Path(found[-1]).parent


def _alive(pid: int) -> bool:
    """Running. A zombie waiting for its reaper is not: an xdist worker that crashed stays one until the run ends,
    and a server owner waiting for it to let go would wait for ever (a CI run hung so)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel (a zombie then counts as running)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


def _reap_orphans(binaries: Path) -> None:
    """Stop and remove clusters left by a test run that was killed before it could stop them (creator gone)."""
    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            creator = int((root / "creator.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(creator):
            continue
        owner: dict[str, object] = {}
        if os.geteuid() == 0:
            stat = root.stat()
            owner = {"user": stat.st_uid, "group": stat.st_gid, "extra_groups": []}
        if (root / "data" / "postmaster.pid").exists():
            subprocess.run(
                [str(binaries / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                cwd=root,
                **owner,  # type: ignore[arg-type]
            )
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """initdb + pg_ctl in a temporary folder; `start()` / `stop()` (or a `with` block)."""

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        self.bin = bin_dir()
        self.settings = dict(FAST if settings is None else settings)
        self.password = secrets.token_hex(12)
        self.port = 0
        self.root: Path | None = None
        self._owner: dict[str, object] = {}  # subprocess kwargs that run a command as the cluster's owner
        self._running = False
        self._attached = False  # another process's cluster (attach): never stopped from here

    # -- where things are -----------------------------------------------------------------------
    @property
    def data(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root

    def url(self, database: str, *, password: bool = True) -> str:
        """postgresql://cogscope:PASSWORD@127.0.0.1:PORT/DATABASE (the password left out with password=False)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    # -- running commands as the cluster's owner --------------------------------------------------
    def _run(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [str(a) for a in args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            **self._owner,  # type: ignore[arg-type]
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def psql(self, database: str, sql: str) -> str:
        """Run SQL as the superuser over the Unix socket; returns psql's unaligned, tuples-only output."""
        return self._run(
            self.bin / "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-tA",
            "-c",
            sql,
        ).strip()

    def scalar(self, database: str, sql: str) -> int:
        return int(self.psql(database, sql) or 0)

    def create_database(self, name: str) -> str:
        """A new database owned by the password user; returns its URL (with the password)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        self.psql("postgres", f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> TempPostgres:
        _reap_orphans(self.bin)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / "creator.pid").write_text(str(os.getpid()))
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        os.chmod(self.root, 0o700)
        self.port = _free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._owner:
            os.chown(pwfile, int(self._owner["user"]), int(self._owner["group"]))  # type: ignore[call-overload]
        try:
            self._run(
                self.bin / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",  # the socket is in our 0700 folder: only its owner (and root) reach it
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            )
            pwfile.unlink()
            options = f"-k {self.socket_dir} -h 127.0.0.1 -p {self.port}" + "".join(
                f" -c {key}={value}" for key, value in self.settings.items()
            )
            self._run(
                self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "postgres.log", "-w", "-o", options, "start"
            )
            self._running = True
            atexit.register(self.stop)  # a backstop: the fixture or `with` stops it first
            self.psql("postgres", f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder; safe to call twice."""
        if self.root is None or self._attached:
            return
        if self._running:
            self._running = False
            try:
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def attachment(self) -> dict[str, object]:
        """What another process needs to use this running cluster (`TempPostgres.attach`); it never stops it."""
        assert self.root is not None, "start() first"
        return {"root": str(self.root), "port": self.port, "password": self.password, "owner": self._owner}

    @classmethod
    def attach(cls, attachment: Mapping[str, object]) -> TempPostgres:
        """The cluster another process started and will stop: URLs and psql work; `stop()` leaves it running."""
        cluster = cls()
        cluster.password = str(attachment["password"])
        cluster.port = int(attachment["port"])  # type: ignore[call-overload]
        cluster._owner = dict(attachment["owner"])  # type: ignore[call-overload]
        cluster.root = Path(str(attachment["root"]))
        cluster._attached = True
        return cluster

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.data.parent / "postgres.log").read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
