"""A real nginx in front of gateway processes, configured from deploy/nginx/.

The server block is deploy/nginx/messaging.conf.template, rendered as the official image renders
it (`${VAR}` replaced from the environment, nginx's own `$variables` left alone); only the main
file around it (paths of the pid, logs and temporary files) belongs to the test.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import string
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from messaging.devservices import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "messaging.conf.template"
NGINX_FALLBACK = "/usr/sbin/nginx"

MAIN_CONF = """worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


def nginx_program() -> str:
    found = shutil.which("nginx") or (NGINX_FALLBACK if Path(NGINX_FALLBACK).exists() else None)
    if found is None:
        raise RuntimeError(
            "nginx not found: `make test` installs it (Debian package nginx, as root), or "
            "`python -m messaging.devservices --ensure-packages --with-test-servers`"
        )
    return found


def render(variables: dict[str, str]) -> str:
    """The template with the deployment's variables filled in, as envsubst would."""
    text = TEMPLATE.read_text(encoding="utf-8")
    rendered = string.Template(text).safe_substitute(variables)
    leftover = [v for v in ("MESSAGING_GATEWAY_", "NGINX_") if "${" + v in rendered]
    assert not leftover, f"variables of the template left unset: {leftover}"
    return rendered


@dataclass
class Nginx:
    """A running nginx: `url` and `ws_url` are what clients use (duck-typed as a Gateway)."""

    port: int
    prefix: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log(self) -> str:
        parts = []
        for name in ("error.log", "access.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_nginx(upstreams: Sequence[int], prefix: Path) -> Iterator[Nginx]:
    """nginx on a free loopback port, balancing over the gateways on `upstreams` (two ports)."""
    program = nginx_program()
    prefix.chmod(0o755)  # nginx's workers run as `nobody` when the master is root
    for sub in ("conf.d", "tmp"):
        (prefix / sub).mkdir()
    (prefix / "tmp").chmod(0o777)
    port = free_port()
    first, second = upstreams
    (prefix / "conf.d" / "messaging.conf").write_text(
        render(
            {
                "MESSAGING_GATEWAY_1": f"127.0.0.1:{first}",
                "MESSAGING_GATEWAY_2": f"127.0.0.1:{second}",
                "NGINX_LISTEN": f"127.0.0.1:{port}",
                "NGINX_ACCESS_LOG": str(prefix / "access.log"),
            }
        )
    )
    conf = prefix / "nginx.conf"
    conf.write_text(MAIN_CONF.format(prefix=prefix))
    command = [program, "-c", str(conf), "-p", str(prefix)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"nginx -t refused the configuration:\n{checked.stderr}"
    with (prefix / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT
        )
    server = Nginx(port, prefix, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def _wait_ready(server: Nginx) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {server.proc.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not answer in time:\n{server.log()}")
