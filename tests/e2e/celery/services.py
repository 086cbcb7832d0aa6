"""The servers under the Celery deployment: PostgreSQL (metadata database, Celery results) and
Redis (Celery broker), each a real server from Debian's packages started here.

Each server runs on 127.0.0.1 and a free port, with its own data directory under the
deployment's home, as an unprivileged system user when the tests run as root (``postgres``,
``redis``: the packages create them), in its own session (process group) with a known PID, and
with an environment that does not carry AIRFLOW_HOME (so the deployment's stray sweep never
mistakes it for an Airflow process). ``scripts/install-services.sh`` installs the packages.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..deployment import _free_port, _group_members, _tail, wait_for

PG_BIN = Path(os.environ.get("PH_BX_PG_BIN", "/usr/lib/postgresql/15/bin"))
INSTALL_HINT = "run scripts/install-services.sh (as root: Debian's postgresql and redis-server)"
START_TIMEOUT = 60.0
STOP_GRACE = 10.0
# Nothing of the servers' own environment but what they need: no AIRFLOW_HOME, no venv.
_SERVER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class Server:
    """One server process: started by ``start``, stopped by PID (and process group) in ``stop``."""

    name = "server"
    # The signal that asks this server to shut down quickly.
    stop_signal = signal.SIGTERM
    # The system user it runs as when the tests run as root.
    system_user = ""

    def __init__(self, root: Path) -> None:
        self.root = root / self.name
        self.port = _free_port()
        self.password = secrets.token_hex(16)
        self.log_path = root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.user = self._user()
        self.root.mkdir(mode=0o700)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _user(self) -> str:
        if os.geteuid() != 0:
            return ""  # already unprivileged: run as ourselves
        try:
            pwd.getpwnam(self.system_user)
        except KeyError:
            raise AssertionError(
                f"no '{self.system_user}' system user to run {self.name} as: {INSTALL_HINT}"
            ) from None
        return self.system_user

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop root for the server's user (none when not root)."""
        if not self.user:
            return {}
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers on its port (it may raise while starting)."""
        raise NotImplementedError

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=_SERVER_ENV,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._as_user(),
            )

    def wait_ready(self) -> None:
        def probe() -> bool | None:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise AssertionError(
                    f"{self.name} exited with code {code}:\n{_tail(self.log_path)}"
                )
            try:
                return True if self.ready() else None
            except Exception:  # refused, still starting up
                return None

        wait_for(
            probe,
            f"{self.name} to accept connections on 127.0.0.1:{self.port}",
            START_TIMEOUT,
            interval=0.1,
            details=lambda: _tail(self.log_path),
        )

    def stop(self) -> list[str]:
        """Stop the server by its PID; SIGKILL its process group after the grace period.
        Return descriptions of the processes that had to be SIGKILLed (empty on a clean stop)."""
        process = self.process
        if process is None:
            return []
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE)
        left = _group_members(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE)
        return [f"{self.name} ({len(left)} left)"] if left else []


class Postgres(Server):
    """PostgreSQL 15: ``initdb`` into ``<home>/postgres/data``, then the ``postgres`` server with
    one password-protected role and database, ``airflow``, over TCP only (no Unix socket).

    Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the database
    lives as long as the test session.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit
    system_user = "postgres"
    role = database = "airflow"

    def __init__(self, root: Path) -> None:
        for tool in ("initdb", "postgres"):
            if not (PG_BIN / tool).is_file():
                raise AssertionError(f"PostgreSQL's {PG_BIN / tool} is missing: {INSTALL_HINT}")
        super().__init__(root)
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``airflow`` database (psycopg2 driver)."""
        return (
            f"postgresql+psycopg2://{self.role}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database}"
        )

    def init(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if self.user:
            shutil.chown(password_file, self.user, self.user)
        result = subprocess.run(
            [
                str(PG_BIN / "initdb"),
                f"--pgdata={self.data}",
                f"--username={self.role}",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            env=_SERVER_ENV,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            **self._as_user(),
        )
        password_file.unlink()
        assert result.returncode == 0, (
            f"initdb failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        flags = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [str(PG_BIN / "postgres"), "-D", str(self.data), *flags]

    def _connect(self, dbname: str) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.role,
            password=self.password,
            dbname=dbname,
            connect_timeout=2,
        )

    def ready(self) -> bool:
        self._connect("postgres").close()
        return True

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on the ``airflow`` database."""
        connection = self._connect(self.database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def create_database(self) -> None:
        connection = self._connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {self.database}")
        finally:
            connection.close()


class Redis(Server):
    """Redis 7 with a password, no persistence (``save ""``, no AOF)."""

    name = "redis"
    system_user = "redis"

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(self.binary).is_file():
            raise AssertionError(f"redis-server is missing: {INSTALL_HINT}")
        super().__init__(root)

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.root),
            "--requirepass",
            self.password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]

    def ready(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url(), socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()


def start_services(root: Path) -> tuple[Postgres, Redis, dict[str, float]]:
    """Start both servers (Redis while ``initdb`` runs) and wait until they accept clients."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    postgres, redis = Postgres(root), Redis(root)
    redis.start()
    try:
        postgres.init()
        postgres.start()
        postgres.wait_ready()
        postgres.create_database()
        redis.wait_ready()
    except BaseException:
        redis.stop()
        postgres.stop()
        raise
    timings["postgres+redis ready"] = time.monotonic() - started
    return postgres, redis, timings
