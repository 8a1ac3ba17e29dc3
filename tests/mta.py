"""A private Debian Postfix on loopback, for tests and benchmarks that need a real relay.

Each `Postfix` instance has its own configuration, queue and data directories under one
temporary directory, listens on 127.0.0.1 only (a free port, `.port`), and can never send
anything off this machine: mail it does not deliver into a local Maildir goes either to
``error:`` (the default: bounced), to ``discard:``, or to one loopback port.

Usage from a test (Postfix must be started as root; `skip_unless_available()` skips with
the reason and the install command otherwise)::

    from mta import Postfix                 # tests/ is on sys.path under pytest
    from support import smtp_server

    def test_relay(tmp_path):
        Postfix.skip_unless_available()
        with smtp_server() as (inbox, sink_port), Postfix(relay_port=sink_port) as mta:
            ...  # point digestd at smtp.host=127.0.0.1, smtp.port=mta.port
            mta.wait_until_empty()  # everything handed to the sink (or bounced)

From a script in ``benchmarks/`` (run as root)::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from mta import Postfix
    with Postfix(discard=True) as mta:      # accepts everything, delivers nothing
        ...  # smtp.port = mta.port

Options (keyword arguments, combinable):

- ``relay_port=N``: relay every message to ``[127.0.0.1]:N`` (say an aiosmtpd sink acting
  as the next hop). Without it and without ``discard``, remote mail is bounced by ``error:``.
- ``discard=True``: accept everything and drop it (a fast relay for send benchmarks, e.g.
  ``benchmarks/`` scripts measuring digestd's side of SMTP only).
- ``refuse="client"``: every RCPT gets ``554 5.7.1 <…>: Client host rejected: Access denied``
  — what a relay that requires SASL login answers a client that did not log in
  (``smtpd_client_restrictions = permit_sasl_authenticated, reject`` with no SASL offered).
  ``refuse="relay"``: every RCPT gets ``554 5.7.1 <…>: Relay access denied``.
- ``recipient_replies={"grey@example.net": "450 4.7.1 Greylisted"}``: per-recipient replies
  to RCPT TO (check_recipient_access), for greylisting and single-recipient refusals.
- ``maildir_domains=("example.org",)``: mail to any address at that domain is delivered by
  Postfix's virtual(8) agent into the Maildir ``mta.maildir("example.org")`` (inside the
  instance's directory, which the unprivileged delivery agent can reach). This is how a
  bounce comes back: send with envelope sender ``bounces+tok@example.org``, let the next hop
  answer 550 to the recipient (an aiosmtpd handler returning ``550 5.1.1 No such user`` from
  ``handle_RCPT``), and Postfix's DSN to the envelope sender lands in that Maildir, ready
  for a bounce intake that reads Maildirs. `wait_for_maildir(domain, n)` waits for it.
- ``settings={"key": "value"}``: any other main.cf parameter.

`reconfigure(...)` takes the same options (not the port or Maildir domains) and restarts a
running instance, e.g. to turn a working relay into one that refuses digestd.

Queue timing is shortened for tests (deferred mail is retried every second or two), so a
next hop that comes back is used within seconds. `stop()` / `start()` can be repeated to
simulate a relay outage; the queue survives. The first start of an instance takes ~2.5 s
(Postfix creates its queue), restarts a fraction of a second: share one instance across a
module's tests where you can. `queue()` lists what is queued (``postqueue
-j``), `log()` returns the instance's own log file.

Postfix is started with ``postfix -c DIR start`` (restarts run its master directly) and
stopped with SIGTERM to its master, as ``postfix stop`` does. Postfix accepts a non-default
configuration directory only when the default ``/etc/postfix/main.cf`` lists it in
``alternate_config_directories``; `Postfix` adds its directory there (creating the file
when the package left none) and removes it again on `close()`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

POSTFIX = Path("/usr/sbin/postfix")
POSTQUEUE = Path("/usr/sbin/postqueue")
MASTER = Path("/usr/lib/postfix/sbin/master")
DEFAULT_MAIN_CF = Path("/etc/postfix/main.cf")
INSTALL_HINT = "install it with `make debs` (Debian package postfix)"

# master.cf: only what a relay needs, nothing chrooted (the queue lives under a temp dir).
_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
virtual   unix  - n n -    - virtual
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostfixUnavailable(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not POSTFIX.exists():
        return f"Postfix is not installed: {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root (postfix start needs it)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return f"the postfix system user is missing: {INSTALL_HINT}"
    return None


@contextlib.contextmanager
def _locked_main_cf() -> Iterator[None]:
    # Several instances (parallel test runs) edit the default main.cf: one at a time.
    with open(tempfile.gettempdir() + "/.digestd-mta-main-cf.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _alternate_dirs(text: str) -> tuple[list[str], list[str]]:
    """(the other lines of main.cf, the directories of alternate_config_directories)."""
    others, dirs = [], []
    for line in text.splitlines():
        match = re.match(r"\s*alternate_config_directories\s*=(.*)", line)
        if match:
            dirs += [d for d in re.split(r"[\s,]+", match.group(1)) if d]
        else:
            others.append(line)
    return others, dirs


def _set_alternate(add: str | None = None, remove: str | None = None) -> None:
    with _locked_main_cf():
        text = DEFAULT_MAIN_CF.read_text() if DEFAULT_MAIN_CF.exists() else ""
        others, dirs = _alternate_dirs(text)
        # Directories of instances whose temp dir is gone (a killed test run) are dropped too.
        dirs = [d for d in dirs if d != remove and Path(d).exists()]
        if add and add not in dirs:
            dirs.append(add)
        lines = [*others]
        if dirs:
            lines.append("alternate_config_directories = " + " ".join(dirs))
        if any(line.strip() for line in lines):
            DEFAULT_MAIN_CF.write_text("\n".join(lines) + "\n")
        else:
            # The package left no main.cf (no system mail set up): leave none behind either.
            DEFAULT_MAIN_CF.unlink(missing_ok=True)


class Postfix:
    """A private Postfix instance on a free loopback port; see the module docstring."""

    @staticmethod
    def skip_unless_available() -> None:
        """pytest.skip with the reason when a private Postfix cannot run on this machine."""
        import pytest

        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)

    def __init__(
        self,
        *,
        relay_port: int | None = None,
        discard: bool = False,
        refuse: Literal["client", "relay"] | None = None,
        recipient_replies: Mapping[str, str] | None = None,
        maildir_domains: Sequence[str] = (),
        settings: Mapping[str, str] | None = None,
        port: int | None = None,
    ):
        reason = unavailable_reason()
        if reason:
            raise PostfixUnavailable(reason)
        # A directory of our own, readable by the postfix user (pytest's tmp_path is 0700
        # under a 0700 parent, which Postfix's unprivileged daemons cannot enter).
        base = Path(tempfile.mkdtemp(prefix="digestd-postfix-"))
        base.chmod(0o755)
        self.root = base
        self.config_dir = base / "etc"
        self.queue_dir = base / "spool"
        self.data_dir = base / "lib"
        self.log_file = base / "maillog"
        self.port = port or _free_port()
        self.relay_port = relay_port
        self._running = False
        self._started_once = False
        for directory in (self.config_dir, self.queue_dir, self.data_dir):
            directory.mkdir(mode=0o755)
        owner = pwd.getpwnam("postfix")
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        self._maildir_domains = list(maildir_domains)
        for domain in self._maildir_domains:
            # virtual(8) writes as the postfix user, so the Maildirs live in our 0755 tree.
            maildir = self.maildir(domain)
            maildir.mkdir(mode=0o755, parents=True)
            os.chown(maildir, owner.pw_uid, owner.pw_gid)
        self.reconfigure(
            relay_port=relay_port, discard=discard, refuse=refuse,
            recipient_replies=recipient_replies, settings=settings,
        )
        _set_alternate(add=str(self.config_dir))

    def reconfigure(
        self,
        *,
        relay_port: int | None = None,
        discard: bool = False,
        refuse: Literal["client", "relay"] | None = None,
        recipient_replies: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the options given at construction (the port and Maildir domains stay);
        a running instance restarts (its queue is kept), so the next connection sees the change."""
        if relay_port is not None and discard:
            raise ValueError("relay_port and discard exclude each other")
        self.relay_port = relay_port
        self._write_config(
            relay_port=relay_port, discard=discard, refuse=refuse,
            recipient_replies=recipient_replies or {}, maildir_domains=self._maildir_domains,
            settings=settings or {}, owner=pwd.getpwnam("postfix"),
        )
        if self._running:
            # A restart, not `postfix reload`: that takes seconds of checks, and an idle
            # smtpd of the old configuration may still answer the next connection.
            self.stop()
            self.start()

    # Configuration ----------------------------------------------------------------------------

    def _write_config(
        self, *, relay_port: int | None, discard: bool, refuse: str | None,
        recipient_replies: Mapping[str, str], maildir_domains: Sequence[str],
        settings: Mapping[str, str], owner: pwd.struct_passwd,
    ) -> None:
        if discard:
            remote = "discard:"
        elif relay_port is not None:
            remote = f"smtp:[127.0.0.1]:{relay_port}"
        else:
            remote = "error:5.7.1 this test relay sends nothing off the machine"
        main = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": f"postfix-{self.root.name}",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(self.root),
            "myhostname": "relay.test",
            "mydomain": "relay.test",
            "myorigin": "relay.test",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:5.1.1 no local delivery on this test relay",
            # Everything that is not for a Maildir domain below goes here, and only here.
            "default_transport": remote,
            "relay_transport": remote,
            "relayhost": "",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtputf8_enable": "yes",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            # Tests want retries in seconds, not the production 5 to 67 minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "delay_warning_time": "0h",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "anvil_rate_time_unit": "60s",
            "default_process_limit": "20",
            "smtp_destination_concurrency_limit": "20",
            "default_destination_concurrency_limit": "20",
            "message_size_limit": "52428800",
            "virtual_mailbox_limit": "0",
        }
        if refuse == "client":
            main["smtpd_sasl_auth_enable"] = "no"
            main["smtpd_client_restrictions"] = "permit_sasl_authenticated, reject"
        elif refuse == "relay":
            main["mynetworks"] = "192.0.2.1/32"  # loopback is no trusted network
        elif refuse is not None:
            raise ValueError(f"refuse must be 'client' or 'relay', not {refuse!r}")
        if recipient_replies:
            table = self.config_dir / "recipient_access"
            table.write_text(
                "".join(f"{address} {reply}\n" for address, reply in recipient_replies.items())
            )
            main["smtpd_recipient_restrictions"] = f"check_recipient_access texthash:{table}"
        if maildir_domains:
            base = self.root / "maildirs"
            entries = [f"@{domain} {domain}/\n" for domain in maildir_domains]
            table = self.config_dir / "virtual_mailboxes"
            table.write_text("".join(entries))
            main.update({
                "virtual_mailbox_domains": " ".join(maildir_domains),
                "virtual_mailbox_base": str(base),
                "virtual_mailbox_maps": f"texthash:{table}",
                "virtual_uid_maps": f"static:{owner.pw_uid}",
                "virtual_gid_maps": f"static:{owner.pw_gid}",
                "virtual_minimum_uid": str(min(owner.pw_uid, 100)),
            })
        main.update(settings)
        (self.config_dir / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in main.items())
        )
        (self.config_dir / "master.cf").write_text(
            _MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
        )

    # Running ----------------------------------------------------------------------------------

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(POSTFIX), "-c", str(self.config_dir), *args],
            capture_output=True, text=True, timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"postfix {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip()}\n{self.log()[-3000:]}"
            )
        return done

    def start(self) -> Postfix:
        """Start the instance and wait until its smtpd answers.

        The first start is ``postfix start`` (which checks and creates the queue); a restart
        runs the master daemon directly, as ``postfix start`` ends by doing, without its
        second of checks.
        """
        if self._started_once:
            done = subprocess.run(
                [str(MASTER), "-c", str(self.config_dir), "-w"],
                capture_output=True, text=True, timeout=60,
            )
            if done.returncode != 0:
                raise RuntimeError(f"postfix master failed: {done.stderr}\n{self.log()[-3000:]}")
        else:
            self._postfix("start")
            self._started_once = True
        self._running = True
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not answer on port {self.port}\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it (the queue is kept: `start()` again resumes it). Waits until the port is
        closed, so a client sees "connection refused" right after."""
        if not self._running:
            return
        # What `postfix stop` does (SIGTERM to the master, which stops its children), without
        # its script's checks and its waiting in whole seconds.
        pid_file = self.queue_dir / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            self._postfix("stop", check=False)
            pid = 0
        self._running = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pid:
                try:
                    os.kill(pid, 0)
                    time.sleep(0.02)
                    continue
                except ProcessLookupError:
                    pid = 0
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                return
            time.sleep(0.02)

    def flush(self) -> None:
        """Ask for every deferred message to be tried now."""
        self._postfix("flush", check=False)

    def queue(self) -> list[dict]:
        """The queued messages, as ``postqueue -j`` reports them (one dict per message)."""
        done = subprocess.run(
            [str(POSTQUEUE), "-c", str(self.config_dir), "-j"],
            capture_output=True, text=True, timeout=30,
        )
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def wait_until_empty(self, timeout: float = 30) -> None:
        """Wait until the queue holds nothing (every message delivered or bounced)."""
        deadline = time.monotonic() + timeout
        while True:
            queued = self.queue()
            if not queued:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"postfix queue not empty after {timeout}s: {queued}\n{self.log()[-3000:]}"
                )
            time.sleep(0.2)

    def maildir(self, domain: str) -> Path:
        """The Maildir that mail for `domain` is delivered into (see ``maildir_domains``)."""
        return self.root / "maildirs" / domain

    def wait_for_maildir(self, domain: str, count: int, timeout: float = 30) -> list[bytes]:
        """The messages delivered for `domain`, once there are at least `count` of them."""
        new = self.maildir(domain) / "new"
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(new.glob("*")) if new.exists() else []
            if len(files) >= count:
                return [f.read_bytes() for f in files]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(files)} of {count} messages for {domain} after {timeout}s\n"
                    f"{self.log()[-3000:]}"
                )
            time.sleep(0.2)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop and remove everything (queue, Maildirs, log)."""
        self.stop()
        _set_alternate(remove=str(self.config_dir))
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
