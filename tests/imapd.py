"""A private Debian Dovecot IMAP server on loopback, for tests of the IMAP bounce intake.

Its configuration, mail and state live under one temporary directory; it listens on
127.0.0.1 only (a free port), with one user whose password is in a passwd-file and whose
Maildir is under that directory. Plain-text login is allowed: loopback only. Given a
certificate, it offers STARTTLS on that port and implicit TLS (IMAPS) on a second one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import Certificate, free_port, wait_for

DOVECOT = "/usr/sbin/dovecot"
INSTALL = "apt-get install -y dovecot-imapd (make debs does it)"


class Dovecot:
    user = "bounces"
    password = "secret-imap-password"

    @staticmethod
    def skip_unless_available() -> None:
        if not Path(DOVECOT).exists():
            pytest.skip(f"needs Debian's Dovecot: {INSTALL}")
        if os.geteuid() != 0:
            pytest.skip("Dovecot is started as root here (it drops to its own users)")

    def __init__(self, tls: Certificate | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="digestd-imap-"))
        self.port = free_port()
        #: the IMAPS (implicit TLS) port; 0 without a certificate
        self.tls_port = free_port() if tls else 0
        ssl_settings = (
            f"ssl = yes\nssl_cert = <{tls.cert}\nssl_key = <{tls.key}\n" if tls else "ssl = no\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        # Dovecot refuses mail access as root: the mail belongs to "nobody".
        nobody = pwd.getpwnam("nobody")
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        self.dir.chmod(0o755)
        (self.dir / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(f"""\
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl_settings}disable_plaintext_auth = no
# "Login: user=<...>" lines: tests read them to see which logins reached the server
auth_verbose = yes
auth_mechanisms = plain login
mail_location = maildir:{self.mail}/%u
first_valid_uid = {nobody.pw_uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={self.mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
{"    ssl = yes" if tls else ""}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")

    def start(self) -> Dovecot:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_for(self._answers, 15, "Dovecot to listen")
        except AssertionError:
            self.close()
            raise
        return self

    def _answers(self) -> bool:
        import socket

        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"Dovecot exited: {self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def logins(self) -> list[str]:
        """Log lines of the logins the server accepted (``Login: user=<bounces>,
        method=PLAIN, ..., TLS``; "secured" instead of "TLS" for plaintext on loopback)."""
        return [line for line in self.log().splitlines() if "imap-login: Info: Login: " in line]

    def unauthenticated(self) -> list[str]:
        """Log lines of connections that ended without any login attempt."""
        return [line for line in self.log().splitlines() if "(no auth attempts" in line]

    def refused(self) -> list[str]:
        """Log lines of connections that ended after a failed login."""
        return [line for line in self.log().splitlines() if "(auth failed" in line]

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
