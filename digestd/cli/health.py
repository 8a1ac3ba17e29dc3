"""digestd healthcheck: ask the running daemon's /healthz, for container and monitor checks."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from digestd.cli.common import Commands
from digestd.config import Config

#: a daemon listening on every address is asked on loopback
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def healthz_url(config: Config) -> str:
    host, port = config.http_host_port
    host = WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def cmd_healthcheck(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 when the daemon at http.address answers /healthz with 200, else 1.

    For HEALTHCHECK in a container or a monitoring probe: the database answers and, on the
    leader, the scheduler keeps time. Prints the verdict in one line.
    """
    url = healthz_url(config)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            verdict = response.read().decode("utf-8", "replace").splitlines()
            print(f"healthy: {' / '.join(verdict)}")
            return 0
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace").splitlines()
        print(f"digestd: unhealthy ({exc.code}): {body[0] if body else exc.reason}",
              file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"digestd: no answer from {url}: {reason}", file=sys.stderr)
    return 1


ORDER = 15


def register(commands: Commands) -> None:
    check = commands.command("healthcheck", cmd_healthcheck)
    check.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS",
        help="seconds to wait for the answer (default 5)",
    )
