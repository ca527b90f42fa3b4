"""Debian's nginx in front of the web processes, with the shipped upstream and proxy snippets.

`nginx_conf` renders a loopback nginx.conf (plain HTTP: TLS is the site file's job, not what
these runs look at) that includes firmware-config/nginx/chot-upstream.conf, its two ports
swapped for the test's, and chot-proxy.conf unchanged, so what runs is what ships.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
NGINX_DIR = REPO / "firmware-config" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED_PORTS = ("127.0.0.1:8080", "127.0.0.1:8081")  # the upstream lines in chot-upstream.conf


def nginx_conf(workdir: Path, listen: int, ports: list[int]) -> Path:
    """Write nginx.conf (and its upstream copy) into `workdir`: listen on `listen`, proxy to `ports`."""
    if len(ports) != len(SHIPPED_PORTS):
        raise ValueError(f"the shipped upstream names {len(SHIPPED_PORTS)} web processes, got {len(ports)} ports")
    upstream = (NGINX_DIR / "chot-upstream.conf").read_text()
    for shipped, port in zip(SHIPPED_PORTS, ports):
        upstream = upstream.replace(shipped, f"127.0.0.1:{port}")
    (workdir / "chot-upstream.conf").write_text(upstream)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n access_log {workdir}/access.log;\n client_body_temp_path {workdir}/body;\n"
        f" proxy_temp_path {workdir}/proxy;\n include {workdir}/chot-upstream.conf;\n"
        f" server {{\n  listen 127.0.0.1:{listen};\n  include {NGINX_DIR / 'chot-proxy.conf'};\n }}\n}}\n")
    return conf


def start_nginx(workdir: Path, listen: int, ports: list[int]) -> subprocess.Popen[bytes]:
    """nginx in the foreground on `listen` (the caller waits for the port and stops it)."""
    conf = nginx_conf(workdir, listen, ports)
    with open(workdir / "nginx.out", "wb") as log:
        return subprocess.Popen([NGINX, "-p", str(workdir), "-c", str(conf)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
