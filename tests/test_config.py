import re
from pathlib import Path

from digests.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()


def test_every_setting_is_documented_in_env_example():
    documented = {line.split("=", 1)[0] for line in _example_lines() if re.match(r"^[A-Z][A-Z0-9_]*=", line)}
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from .env.example"
    assert documented - fields == set(), ".env.example names settings that do not exist"


def test_every_setting_in_env_example_has_a_comment_above_it():
    lines = _example_lines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = [prev for prev in lines[:i] if prev.strip()]
            assert above and above[-1].startswith("#"), f"no comment right above {line!r}"


def test_env_example_values_parse(tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    settings = Settings(_env_file=env)
    assert settings.database_url == "sqlite:///clapper.db"
    assert settings.admin_telegram_ids == []


def test_admin_ids_accept_comma_lists_and_json(monkeypatch):
    monkeypatch.setenv("ADMIN_TELEGRAM_IDS", "12, 34")
    assert Settings(_env_file=None).admin_telegram_ids == [12, 34]
    monkeypatch.setenv("ADMIN_TELEGRAM_IDS", "[56]")
    assert Settings(_env_file=None).admin_telegram_ids == [56]

