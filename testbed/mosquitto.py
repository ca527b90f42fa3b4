"""A real Mosquitto broker on a free loopback port: `Mosquitto(workdir, conf_text, port)`.

`make_conf(...)` renders the standard test config; `write_password_file` makes Mosquitto's own
hashes with mosquitto_passwd. The pytest fixtures are tests/support/broker.py's.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from pathlib import Path

from common import localnet
from testbed.process import ServerProcess

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

_BASE_CONF = """\
user {user}
listener {port} 127.0.0.1
allow_anonymous {anonymous}
persistence {persistence}
persistence_location {workdir}/
autosave_interval 1
pid_file {workdir}/mosquitto.pid
log_dest file {workdir}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
max_queued_messages 100000
"""


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    if not localnet.wait_for_port(port, timeout, host):
        raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """Write a Mosquitto password file with mosquitto_passwd (hashes made by Mosquitto itself)."""
    path.write_text("")
    for user, password in passwords.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), user, password], check=True,
                       capture_output=True, timeout=20)
    os.chmod(path, 0o600)


class Mosquitto(ServerProcess):
    """One Mosquitto process; config rendered with `{port}`, `{workdir}` and `{user}` placeholders."""

    def __init__(self, workdir: Path, conf_text: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.host = "127.0.0.1"
        self.conf_path = workdir / "mosquitto.conf"
        text = conf_text.replace("{port}", str(port)).replace("{workdir}", str(workdir))
        # Mosquitto started as root drops to user "mosquitto", which cannot write a test's tmp dir.
        text = text.replace("{user}", getpass.getuser())
        self.conf_path.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        stderr = open(self.workdir / "mosquitto.stderr", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=stderr,
                                     stderr=stderr, start_new_session=True)
        try:
            wait_for_port(self.port, timeout)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"mosquitto did not start:\n{self.log_text()}") from None

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.start(timeout)

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password and ACL files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        parts = []
        for name in ("mosquitto.log", "mosquitto.stderr"):
            p = self.workdir / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)


def make_conf(*, anonymous: bool = True, persistence: bool = True, password_file: Path | None = None,
              acl_file: Path | None = None, extra: str = "") -> str:
    """The standard test config: loopback listener, persistence, optional auth files."""
    conf = _BASE_CONF.format(port="{port}", workdir="{workdir}", user=getpass.getuser(),
                             anonymous="true" if anonymous else "false",
                             persistence="true" if persistence else "false")
    if password_file is not None:
        conf += f"password_file {password_file}\n"
    if acl_file is not None:
        conf += f"acl_file {acl_file}\n"
    return conf + extra
