"""A throwaway PostgreSQL cluster on a free loopback port (the demo, tests and benches).

`PostgresCluster(root)` runs Debian's `initdb` and `pg_ctl` (/usr/lib/postgresql/<v>/bin): the
server refuses to run as root, so as root (CI) both run as the system user `postgres` through
`runuser`, and the data folder is made and owned by that user. The superuser has a random
password (scram-sha-256 on TCP), so URLs carry one, as production URLs do.
Usable as a context manager: `with PostgresCluster() as pg: url = pg.create_database("x")`.
The pytest fixtures are in tests/support/postgres.py.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from common.localnet import free_port

SERVER_USER = "postgres"  # the Debian package's system user


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


class PostgresError(RuntimeError):
    """The cluster could not be made, started or stopped; the message holds the tool's output."""


class PostgresCluster:
    """One PostgreSQL server with its own data folder; `url(db)` names a database on it.

    `durable=False` (tests) turns fsync off: a test never survives a power cut. Benches pass
    `durable=True` so commits cost what they cost in production. A given `root` must be
    reachable by the server user (as root: not inside a 0700 folder such as pytest's tmp_path);
    by default a fresh folder under the system's temp folder is made.
    """

    def __init__(self, root: Path | None = None, *, port: int | None = None, durable: bool = False,
                 settings: dict[str, str] | None = None, env: Mapping[str, str] | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise PostgresError("PostgreSQL is not installed (apt-get install postgresql; scripts/setup.sh does)")
        self.bindir = bindir
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="chot-pg-"))
        self.datadir = self.root / "data"
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.password = secrets.token_urlsafe(12)
        self.durable = durable
        self.settings = dict(settings or {})
        self.env = dict(env) if env is not None else None  # the tools' (and server's) environment; None: ours
        self._as_root = os.geteuid() == 0
        self._lock = threading.Lock()
        self._made = 0
        self.running = False

    # -- running the tools -------------------------------------------------------------------
    def _run(self, *args: str, timeout: float = 120.0) -> str:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/", env=self.env)
        if proc.returncode != 0:
            raise PostgresError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def _give_to_server_user(self, path: Path) -> None:
        if self._as_root:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------------
    def _check_reachable(self) -> None:
        """As root the server runs as `postgres`, which must walk every folder above its own."""
        if not self._as_root:
            return
        for folder in self.root.resolve().parents:
            if not os.stat(folder).st_mode & 0o001:
                raise PostgresError(f"the PostgreSQL server runs as user {SERVER_USER}, which cannot reach"
                                    f" {self.root}: {folder} is closed to other users (choose another folder)")

    def init(self) -> None:
        """initdb: a new cluster, UTF-8, superuser `postgres` with a random password."""
        self._check_reachable()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the server user walks through it to its data folder
        self._give_to_server_user(self.root)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        self._give_to_server_user(pwfile)
        try:
            self._run("initdb", "-D", str(self.datadir), "-U", self.user, "--pwfile", str(pwfile),
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                      "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        if not self.durable:
            conf.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        conf.update(self.settings)
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# chot test cluster\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (initdb first if there is no cluster yet) and wait until it accepts."""
        if not self.datadir.exists():
            self.init()
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "server.log"), "-w",
                  "-t", str(int(timeout)), "start", timeout=timeout + 10)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back open transactions; `immediate`: like a crash)."""
        if not self.running:
            return
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
        self.running = False

    def remove(self) -> None:
        """Stop, then delete the whole folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def log_text(self) -> str:
        """The server's log (for a failing test's report)."""
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- databases ---------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """postgresql://postgres:<password>@127.0.0.1:<port>/<database>."""
        secret = f":{quote(self.password, safe='')}" if password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg  # noqa: PLC0415 - only tests that use PostgreSQL need the driver

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`); returns its URL."""
        with self._lock:
            self._made += 1
            name = name or f"t{self._made}_{secrets.token_hex(3)}"
        clause = f' TEMPLATE "{template}"' if template else ""
        self.sql(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still connected to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    """The database part of a postgresql:// URL."""
    return url.rsplit("/", 1)[-1].split("?", 1)[0]
