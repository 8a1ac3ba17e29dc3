"""Private-link tokens: derived from a key kept outside the database, stored only as hashes.

A subscriber's token is ``HMAC-SHA256(link key, link salt)`` in URL-safe base64; the database
holds the salt and the SHA-256 of each valid token, never a token. A copy of the database
therefore hands out no private link, and a lookup is one indexed equality on a hash (nothing
in its timing says how much of a guessed token was right). Restoring the hashes keeps every
link handed out before working; a new salt revokes them all at once.

Every kind of private link (manage, private feed, unsubscribe, and whatever later links are
made of the same token) is checked with `TokenStore.subscriber_id_by_token`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digestd.store.db import Database
from digestd.store.models import SiteKey, Subscriber, SubscriberToken, utcnow

#: a token is 43 characters; anything much longer is not one of ours
MAX_TOKEN_CHARS = 64


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_token(key: bytes, salt: str) -> str:
    digest = hmac.new(key, f"link:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """Names a link key without revealing it (to know whether its hashes are registered)."""
    return hmac.new(key, b"fingerprint", hashlib.sha256).hexdigest()[:20]


class TokenStore(Database):
    def link_token(self, salt: str) -> str:
        """The token for links with this salt; empty when the store has no link key."""
        return derive_token(self.link_key, salt) if self.link_key else ""

    def subscriber_id_by_token(self, token: str) -> int | None:
        """The subscriber a private link's token belongs to, whatever the link is for."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self.read() as session:
            return session.scalar(
                select(SubscriberToken.subscriber_id).where(
                    SubscriberToken.token_hash == token_hash(token)
                )
            )

    def _register_token(self, session: Session, subscriber_id: int, salt: str) -> None:
        if self.link_key:
            session.add(SubscriberToken(
                token_hash=token_hash(self.link_token(salt)), subscriber_id=subscriber_id,
                created_at=utcnow(),
            ))

    def _replace_tokens(self, session: Session, row: Subscriber) -> None:
        """A new salt: every token of the subscriber stops working; the new one is valid."""
        session.execute(delete(SubscriberToken).where(SubscriberToken.subscriber_id == row.id))
        row.link_salt = new_salt()
        session.flush()
        self._register_token(session, row.id, row.link_salt)

    def register_link_key(self) -> int:
        """Make the tokens this store's key derives valid for every subscriber.

        Needed once per key: after the upgrade that introduced derived tokens, and when the
        key file was replaced (a restore on a new machine) or another instance sharing the
        database uses its own. Tokens of other keys stay valid. Returns how many were added.
        """
        if not self.link_key:
            return 0
        marker = f"link-key:{key_fingerprint(self.link_key)}"
        with self.read() as session:
            if session.get(SiteKey, marker) is not None:
                return 0
        with self.write() as session:
            if session.get(SiteKey, marker) is not None:
                return 0
            known = set(session.scalars(select(SubscriberToken.token_hash)))
            added = 0
            for subscriber_id, salt in session.execute(select(Subscriber.id, Subscriber.link_salt)):
                digest = token_hash(self.link_token(salt))
                if digest not in known:
                    session.add(SubscriberToken(
                        token_hash=digest, subscriber_id=subscriber_id, created_at=utcnow()
                    ))
                    added += 1
            session.add(SiteKey(name=marker, value="", created_at=utcnow()))
            return added

    def token_hashes(self, subscriber_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
        """Every valid token hash by subscriber id (exports that keep links working)."""
        query = select(SubscriberToken.subscriber_id, SubscriberToken.token_hash).order_by(
            SubscriberToken.subscriber_id, SubscriberToken.token_hash
        )
        if subscriber_ids is not None:
            query = query.where(SubscriberToken.subscriber_id.in_(list(subscriber_ids)))
        found: dict[int, list[str]] = {}
        with self.read() as session:
            for subscriber_id, digest in session.execute(query):
                found.setdefault(subscriber_id, []).append(digest)
        return found

    def add_token_hashes(self, subscriber_id: int, hashes: Iterable[str]) -> int:
        """Accept tokens known by their hashes (a restore); returns how many were new."""
        wanted = {h.lower() for h in hashes if _is_hash(h)}
        with self.write() as session:
            known = set(session.scalars(
                select(SubscriberToken.token_hash).where(SubscriberToken.token_hash.in_(wanted))
            ))
            for digest in sorted(wanted - known):
                session.add(SubscriberToken(
                    token_hash=digest, subscriber_id=subscriber_id, created_at=utcnow()
                ))
            return len(wanted - known)


def _is_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
