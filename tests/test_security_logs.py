"""Bearer links in logs: `clapper run` and `clapper web` serve the token pages, at DEBUG level,
and no log line may carry a token; no answer may carry a Server header."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from digests import emails, tokens
from digests.config import Settings
from digests.db import session_scope
from tests.fakes.smtp import SMTPSink, free_port
from tests.test_run_e2e import Service, service_env

pytestmark = pytest.mark.slow


def _reader(engine, settings) -> int:
    with session_scope(engine) as s:
        new = emails.new_reader("ann@example.org", ["Belgium"], [], "weekly")
        return emails.add_reader(s, settings, new, confirmed=True).id


@pytest.mark.parametrize("command", ["run", "web"])
async def test_no_token_in_any_log_line_and_no_server_header(engine, db_url, tmp_path, command):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with SMTPSink() as sink:
        env = service_env(db_url, PUBLIC_BASE_URL=base, WEB_PORT=str(port), LOG_LEVEL="DEBUG",
                          LOG_JSON="false", **sink.env())
        settings = Settings(_env_file=None, database_url=db_url, secret_key=env["SECRET_KEY"],
                            public_base_url=base)
        ann = _reader(engine, settings)
        wanted = {p: tokens.make_token(settings, ann, p) for p in ("unsubscribe", "preferences", "confirm")}
        forged = wanted["unsubscribe"][:-3] + "AAA"
        service = Service(tmp_path, env, command)
        try:
            async with httpx.AsyncClient(base_url=base) as http:

                async def up():
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                for _ in range(300):
                    if await up():
                        break
                    assert service.proc.poll() is None, service.log()
                    await asyncio.sleep(0.1)
                answers = [
                    await http.get("/preferences", params={"token": wanted["preferences"]}),
                    await http.head("/unsubscribe", params={"token": wanted["unsubscribe"]}),
                    await http.get("/confirm", params={"token": wanted["confirm"]}),
                    await http.get("/unsubscribe", params={"token": forged}),
                    await http.post("/unsubscribe", params={"token": wanted["unsubscribe"]},
                                    data={"List-Unsubscribe": "One-Click"}),
                    await http.get("/nope", params={"token": wanted["preferences"]}),
                ]
        finally:
            await service.terminate()
    assert [a.status_code for a in answers][:1] == [200] and answers[3].status_code == 400
    for answer in answers:
        assert "server" not in answer.headers, answer.headers
    log = service.log()
    assert "GET /" not in log and "/healthz" not in log  # no access log at all
    for token in (*wanted.values(), forged):
        assert token not in log
        assert token.split(".")[-1] not in log  # not even the signature
