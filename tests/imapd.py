"""A private Debian Dovecot IMAP server on loopback, for tests of the IMAP bounce intake.

Its configuration, mail and state live under one temporary directory; it listens on
127.0.0.1 only (a free port), with one user whose password is in a passwd-file and whose
Maildir is under that directory. Plain-text login is allowed: loopback only.
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

from support import free_port, wait_for

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

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="digestd-imap-"))
        self.port = free_port()
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
ssl = no
disable_plaintext_auth = no
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
    port = 0
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
