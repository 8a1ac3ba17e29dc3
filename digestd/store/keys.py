"""Per-installation secrets: made once, kept in the database, the same for every process."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from digestd.store.db import Database
from digestd.store.models import SiteKey


class SiteKeyStore(Database):
    def site_key(self, name: str) -> bytes:
        """The secret called `name`, created on first use; two processes racing agree."""
        with self.read() as session:
            value = session.scalar(select(SiteKey.value).where(SiteKey.name == name))
        if value is None:
            try:
                with self.write() as session:
                    session.add(SiteKey(name=name, value=secrets.token_hex(32)))
            except IntegrityError:
                pass  # another process made it first: use theirs
            with self.read() as session:
                value = session.scalar(select(SiteKey.value).where(SiteKey.name == name))
        assert value is not None
        return bytes.fromhex(value)
