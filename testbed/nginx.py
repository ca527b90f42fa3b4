"""Debian's nginx in front of the web processes, on loopback, with the shipped config snippets.

The config is `firmware-config/nginx/chot-upstream.conf` (its two `server` lines pointed at the
given ports) and `chot-proxy.conf` in a plain-HTTP server: TLS is the site file's job
(`chot-dashboard.conf`), not a loopback demo's or test's. nginx runs in the foreground
(`daemon off`) so it is an ordinary child that dies with a signal.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_DIR = Path(__file__).resolve().parents[1] / "firmware-config" / "nginx"
SHIPPED_PORTS = ("127.0.0.1:8080", "127.0.0.1:8081")  # the upstream file's two server lines


def nginx_conf(workdir: Path, listen: int, ports: list[int]) -> Path:
    """Write `workdir/nginx.conf` proxying 127.0.0.1:`listen` to the web processes on `ports` (two)."""
    if len(ports) != len(SHIPPED_PORTS):
        raise ValueError(f"the shipped upstream has {len(SHIPPED_PORTS)} servers, got {len(ports)} ports")
    upstream = (NGINX_DIR / "chot-upstream.conf").read_text()
    for shipped, port in zip(SHIPPED_PORTS, ports):
        upstream = upstream.replace(shipped, f"127.0.0.1:{port}")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "chot-upstream.conf").write_text(upstream)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n access_log {workdir}/access.log;\n client_body_temp_path {workdir}/body;\n"
        f" proxy_temp_path {workdir}/proxy;\n include {workdir}/chot-upstream.conf;\n"
        f" server {{\n  listen 127.0.0.1:{listen};\n  include {NGINX_DIR / 'chot-proxy.conf'};\n }}\n}}\n")
    return conf


def nginx_argv(conf: Path) -> list[str]:
    """The command line running nginx with `conf` (its prefix is the config's folder)."""
    return [NGINX, "-p", str(conf.parent), "-c", str(conf)]


def start_nginx(workdir: Path, listen: int, ports: list[int]) -> subprocess.Popen[bytes]:
    """nginx in the foreground on 127.0.0.1:`listen` in front of `ports`, its output in
    `workdir/nginx.out` (the caller waits for the port and stops the process)."""
    conf = nginx_conf(workdir, listen, ports)
    with open(workdir / "nginx.out", "wb") as log:
        return subprocess.Popen(nginx_argv(conf), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
