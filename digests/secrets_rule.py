"""SECRET_KEY, the one rule for every token and secret Clapper makes or checks.

Email links (confirm, unsubscribe, preferences, the mailto unsubscribe), email code hashes and the
Telegram webhook secret are all derived from one key, so a weak or public key lets anyone act for
any reader. The rule, applied wherever the key is used (through `Settings.secret()`):

- the placeholder `change-me`, or any key under MIN_LENGTH characters, is refused;
- an unset key on a SQLite file database is generated once at random and kept in a file beside
  the database (mode 0600), so the demo and the two-command set-up work with nothing to set;
- an unset key on any other database is refused: processes sharing a PostgreSQL database run on
  different machines and must share one key, which only the operator can give them.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url

PLACEHOLDER = "change-me"
MIN_LENGTH = 32
HOW = (
    "set SECRET_KEY to a random string of at least 32 characters, e.g. the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


class WeakSecret(ValueError):
    """The key is refused; the message is one line an operator can act on."""


def key_file(database_url: str) -> Path | None:
    """Where the generated key of a SQLite file database lives, or None (not SQLite, or memory)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file:") or url.query.get("mode") == "memory":
        return None
    path = Path(name)
    return path.with_name(path.name + ".key")


def check_key(key: str) -> str:
    """`key` when it is strong enough, else WeakSecret."""
    if key.strip() == PLACEHOLDER:
        raise WeakSecret(f"SECRET_KEY is the placeholder {PLACEHOLDER!r}: {HOW}")
    if len(key) < MIN_LENGTH:
        raise WeakSecret(f"SECRET_KEY has {len(key)} characters, fewer than {MIN_LENGTH}: {HOW}")
    return key


def _load_or_create(path: Path) -> str:
    try:
        # O_EXCL: two processes starting at once agree on the first key written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="utf-8").strip()
        try:
            return check_key(key)
        except WeakSecret:
            raise WeakSecret(f"{path} holds no usable key (delete it to make a new one, or {HOW})") from None
    except OSError as exc:
        problem = f"SECRET_KEY is not set and {path} cannot be written ({exc.strerror})"
        raise WeakSecret(f"{problem}: {HOW}") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


@lru_cache(maxsize=64)
def resolve(secret_key: str, database_url: str) -> str:
    """The signing key for these settings, or WeakSecret (see the module's rule)."""
    if secret_key:
        return check_key(secret_key)
    path = key_file(database_url)
    if path is not None:
        return _load_or_create(path)
    if make_url(database_url).get_backend_name() == "sqlite":
        # An in-memory database lives as long as this process; so may its key.
        return secrets.token_urlsafe(48)
    raise WeakSecret(f"SECRET_KEY is not set, and it must be with a shared (non-SQLite) database: {HOW}")
