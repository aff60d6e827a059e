"""Typed readers for settings that come from the environment.

Each helper fails loudly on a malformed value instead of guessing: a typo in a
production variable must stop the process at start-up, not change behaviour. An
unset or empty variable means "use the default". Nothing here touches the
filesystem at import: the generated secret key is written on its first use.
"""

import os
import secrets
from pathlib import Path

from django.utils.functional import SimpleLazyObject


class ConfigError(RuntimeError):
    pass


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"environment variable {name} is required")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    """``true`` or ``false`` in any letter case; anything else (``1``, ``yes``, ``on``...)
    is a ConfigError naming the variable and the value."""
    value = os.environ.get(name, "")
    if value == "":
        return default
    if value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    if value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def secret_key(path: Path, *, required: bool) -> "str | SimpleLazyObject[str]":
    """SECRET_KEY from the environment.

    When it is unset: a ConfigError if ``required`` (production mode, see settings);
    otherwise (the embedded default) a key read from ``path``, which is made with a
    random key on the key's first use (not at import, so importing settings writes
    nothing).
    """
    value = os.environ.get("SECRET_KEY", "")
    if value:
        return value
    if required:
        raise ConfigError(
            "SECRET_KEY is required in production mode (DATABASE_URL set and DEBUG not "
            "true): set it to the same long random value on every host"
        )
    return SimpleLazyObject(lambda: local_secret_key(path))


def local_secret_key(path: Path) -> str:
    """The key kept in ``path``, created (mode 0600) with a random key when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private file, then linked into place: os.link fails when
        # the key exists, so two processes starting together end up with one key, and
        # none reads a half-written file.
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
