"""Weak keys and hostile settings: refused with one clear line and exit 2 by every command that
would use them, never a traceback, never a token signed with a public key."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from digests import secrets_rule, tokens
from digests.cli import app
from digests.cli.bot_cmd import webhook_secret
from digests.config import Settings, get_settings
from digests.secrets_rule import WeakSecret

GOOD_KEY = "a-perfectly-random-key-of-40-characters!"
ANN = tokens.Recipient(7, "ann@example.org")
CLAPPER = [sys.executable, "-c", "from digests.cli import main; main()"]

# Every command that makes or checks a token or secret, with arguments that would otherwise work
# (or fail later, for a reason that is not the key). `bot` needs a token to get as far as the key.
NEEDS_KEY = [
    ["run"],
    ["scheduler"],
    ["web"],
    ["bot"],
    ["deliver", "--once"],
    ["subscribers", "add", "--email", "ann@example.org", "--country", "Belgium"],
    ["subscribers", "import", "readers.csv"],
    ["broadcast", "--file", "message.txt", "--yes"],
    ["digests", "preview", "--email", "ann@example.org"],
    ["digests", "queue", "--all"],
]


@pytest.fixture(autouse=True)
def _fresh_rule():
    secrets_rule.resolve.cache_clear()
    get_settings.cache_clear()
    yield
    secrets_rule.resolve.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """`clapper …` in-process, in an empty directory (no developer .env), with only `env` set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "readers.csv").write_text("email,countries\nann@example.org,Belgium\n")
    (tmp_path / "message.txt").write_text("Hello")
    for name in ("SECRET_KEY", "DATABASE_URL", "PUBLIC_BASE_URL", "MAIL_FROM", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def run(args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return CliRunner().invoke(app, args)

    return run


def _refused(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0]
    return lines[0]


# --- the rule -----------------------------------------------------------------------------------


def test_placeholder_and_short_keys_are_refused_with_or_without_public_url(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    for key in ("change-me", "x", "31-characters-is-one-too-short!", " change-me "):
        for public in ("", "https://news.example.org"):
            settings = Settings(_env_file=None, database_url=db, secret_key=key, public_base_url=public)
            with pytest.raises(WeakSecret, match="SECRET_KEY"):
                settings.secret()
            with pytest.raises(WeakSecret):
                tokens.make_token(settings, ANN, "unsubscribe")
            with pytest.raises(WeakSecret):
                webhook_secret(settings)
    assert Settings(_env_file=None, database_url=db, secret_key="k" * 32).secret() == "k" * 32


def test_unset_key_on_sqlite_is_generated_once_beside_the_database(tmp_path):
    db = tmp_path / "data" / "clapper.db"
    db.parent.mkdir()
    settings = Settings(_env_file=None, database_url=f"sqlite:///{db}")
    key = settings.secret()
    path = tmp_path / "data" / "clapper.db.key"
    assert path.read_text().strip() == key and len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets_rule.resolve.cache_clear()  # a new process
    assert Settings(_env_file=None, database_url=f"sqlite:///{db}").secret() == key
    token = tokens.make_token(settings, ANN, "unsubscribe")
    assert tokens.read_token(settings, token, "unsubscribe").subscriber_id == ANN.id
    # Another database gets another key: its tokens are worthless here.
    other = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    assert other.secret() != key
    with pytest.raises(tokens.InvalidToken):
        tokens.read_token(other, token, "unsubscribe")


def test_a_tampered_key_file_is_refused(tmp_path):
    db = tmp_path / "clapper.db"
    (tmp_path / "clapper.db.key").write_text("short\n")
    with pytest.raises(WeakSecret, match="clapper.db.key"):
        Settings(_env_file=None, database_url=f"sqlite:///{db}").secret()


def test_unset_key_on_postgresql_is_refused(db_url):
    settings = Settings(_env_file=None, database_url=db_url)
    if db_url.startswith("sqlite"):
        assert len(settings.secret()) >= 32
        return
    with pytest.raises(WeakSecret, match="SECRET_KEY is not set"):
        settings.secret()
    with pytest.raises(WeakSecret):
        tokens.link(settings.model_copy(update={"public_base_url": "https://n.example.org"}), ANN, "confirm")


def test_webhook_secret_is_not_derived_from_a_public_default(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'c.db'}")
    secret = webhook_secret(settings)
    # What the old code (and anyone who read it) would compute from the placeholder or no key.
    for public in ("change-me", ""):
        assert secret != hashlib.sha256(f"telegram-webhook:{public}".encode()).hexdigest()
        assert secret != hmac.new(public.encode(), b"clapper.telegram-webhook", hashlib.sha256).hexdigest()
    assert len(secret) == 64 and secret.isalnum()


# --- every command ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", NEEDS_KEY, ids=lambda a: " ".join(a[:2]))
def test_every_command_that_signs_refuses_a_weak_key(cli, tmp_path, args):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    for key, words in (("change-me", ("placeholder",)), ("short-key", ("9 characters", "at least 32"))):
        _refused(cli(args, DATABASE_URL=db, SECRET_KEY=key, TELEGRAM_BOT_TOKEN="1:x"), "SECRET_KEY", *words)
    assert not (tmp_path / "c.db").exists()  # refused before anything was touched


@pytest.mark.parametrize("args", [["run"], ["deliver", "--once"], ["digests", "queue", "--all"]],
                         ids=lambda a: a[0])
def test_commands_refuse_an_unset_key_on_postgresql(cli, args):
    _refused(cli(args, DATABASE_URL="postgresql+psycopg://clapper@127.0.0.1:1/none", SECRET_KEY=""),
             "SECRET_KEY is not set")


def test_commands_that_only_read_need_no_key(cli, db_url):
    for args in (["status"], ["subscribers", "list"], ["articles"], ["sources", "list"]):
        result = cli(args, DATABASE_URL=db_url, SECRET_KEY="")
        assert result.exit_code in (0, 1), (args, result.output)  # status: 1 = nothing ingested yet
        assert "SECRET_KEY" not in result.output


def test_unset_key_on_sqlite_just_works_from_the_cli(cli, tmp_path):
    db = tmp_path / "c.db"
    result = cli(["digests", "queue", "--all"], DATABASE_URL=f"sqlite:///{db}", SECRET_KEY="")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.db.key").exists()


def test_a_real_process_exits_2_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET", "DATABASE", "MAIL", "PUBLIC"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}", SECRET_KEY="change-me")
    run = subprocess.run([*CLAPPER, "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().startswith("SECRET_KEY is the placeholder 'change-me'")
    env.update(SECRET_KEY=GOOD_KEY, MAIL_FROM="Clapper <news@example.org>\r\nBcc: victim@example.org")
    run = subprocess.run([*CLAPPER, "deliver", "--once"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip() == (
        "Refused settings: MAIL_FROM must be one line without control characters (CR, LF, tab…)"
    )


# --- settings that end up in headers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("mail_from", "Clapper <news@example.org>\r\nBcc: victim@example.org"),
        ("mail_from", "news@example.org\nX-Evil: 1"),
        ("mail_from", "Clapper"),  # no address at all
        ("mail_from", "Clapper <news@exämple.org>"),  # not what a plain SMTP server can carry
        ("mail_from", "Clapper <news@example.org>, other@example.org"),
        ("public_base_url", "https://news.example.org/\r\nX-Evil: 1"),
        ("public_base_url", "javascript:alert(1)"),
        ("public_base_url", "https://news.example.org/>, <mailto:evil@example.org"),
        ("public_base_url", "news.example.org"),
        ("telegram_webhook_url", "https://bot.example.org/hook\n"),
        ("http_user_agent", "ClapperBot/0.1\r\nCookie: x"),
    ],
)
def test_header_settings_with_line_breaks_or_junk_are_refused(name, value):
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, **{name: value})
    assert err.value.errors()[0]["loc"] == (name,)


def test_good_header_settings_pass():
    settings = Settings(
        _env_file=None,
        mail_from='"Clapper News" <news@example.org>',
        public_base_url="https://news.example.org/clapper",
        telegram_webhook_url="",
        http_user_agent="ClapperBot/0.1 (+https://example.org)",
    )
    assert settings.mail_from == '"Clapper News" <news@example.org>'
    assert Settings(_env_file=None).mail_from == "Clapper <clapper@localhost>"


def test_a_hostile_setting_is_one_line_from_the_cli(cli, tmp_path):
    line = _refused(
        cli(["deliver", "--once"], DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}", SECRET_KEY=GOOD_KEY,
            MAIL_FROM="news@example.org\r\nBcc: victim@example.org", PUBLIC_BASE_URL="javascript:alert(1)"),
        "MAIL_FROM", "PUBLIC_BASE_URL",
    )
    assert "\r" not in line and "victim" not in line
