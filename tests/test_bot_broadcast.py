"""/broadcast and /announcements through the real PTB client and the fake Bot API."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from bot.app import build_application, polling
from digests.db import session_scope
from digests.deliver import run_worker
from digests.models import Announcement, Outbox, Subscriber
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.smtp import SMTPSink

ADMIN = 900
READERS = [3001, 3002, 3003, 3004, 3005]
INBOXES = ["a@example.org", "b@example.org", "c@example.org"]


@pytest.fixture
async def world(engine, settings):
    with session_scope(engine) as s:
        s.add_all([Subscriber(telegram_chat_id=c, chat_type="private") for c in READERS])
        s.add_all([Subscriber(email=e, email_status="confirmed") for e in INBOXES])
    async with FakeBotAPI(per_chat_interval=None) as api, SMTPSink() as sink:
        cfg = settings.model_copy(
            update={
                **sink.settings(),
                "telegram_bot_token": api.token,
                "telegram_api_base_url": api.base_url,
                "telegram_api_file_url": api.base_file_url,
                "admin_telegram_ids": [ADMIN],
                "broadcast_progress_seconds": 0.2,
                "public_base_url": "https://news.example.org",
            }
        )
        async with polling(build_application(cfg, engine), long_poll=1) as app:
            yield api, sink, cfg, app


async def say(api, chat_id: int, text: str, *, count: int = 1, **kwargs):
    before = len(api.messages_for(chat_id))
    api.push_message(chat_id, text, **kwargs)
    found = await api.wait_messages(chat_id, before + count, within=10)
    return found[before:]


async def tap(api, chat_id: int, message_id: int, data: str, *, user_id: int) -> dict:
    before = len(api.callback_answers)
    api.push_callback(chat_id, message_id, data, user_id=user_id)
    await api.wait_for(lambda: len(api.callback_answers) > before, within=10)
    return api.callback_answers[-1]


def announcements(engine):
    with session_scope(engine) as s:
        return s.exec(select(Announcement).order_by(Announcement.id)).all()


async def test_admin_broadcasts_to_both_channels_with_progress(engine, world):
    api, sink, cfg, _app = world
    [ask] = await say(api, ADMIN, "/broadcast")
    assert "Send me the announcement" in ask.plain
    [refused] = await say(api, ADMIN, "<div>Hi</div>")
    assert "Telegram would refuse" in refused.plain and "<div>" in refused.plain
    preview, question = await say(
        api, ADMIN, "Festival <b>news</b>: see <a href='https://x.org'>x</a>", count=2
    )
    assert preview.plain.startswith("📣 Clapper") and "Festival news" in preview.plain
    assert "5 chats, 3 email addresses" in question.plain
    [draft] = announcements(engine)
    assert draft.state == "draft" and draft.created_by == ADMIN
    assert question.callback_data() == [
        f"bc:go:{draft.id}:t",
        f"bc:go:{draft.id}:e",
        f"bc:go:{draft.id}:b",
        f"bc:x:{draft.id}",
    ]
    answer = await tap(api, ADMIN, question.message_id, f"bc:go:{draft.id}:b", user_id=ADMIN)
    assert answer["text"] == "Queued for 8 recipients."
    state = api.message(ADMIN, question.message_id)
    assert "sending" in state["text"] and "Queued 8" in state["text"]
    assert state["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"bc:stop:{draft.id}"
    # A second tap (or a replayed callback) queues nothing more.
    again = await tap(api, ADMIN, question.message_id, f"bc:go:{draft.id}:b", user_id=ADMIN)
    assert "already sent" in again["text"]

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(engine, cfg, stop=stop, worker_id="w", idle_sleep=0.05))
    try:
        await api.wait_for(
            lambda: "done" in (api.message(ADMIN, question.message_id) or {}).get("text", ""), within=20
        )
    finally:
        stop.set()
        await worker
    final = api.message(ADMIN, question.message_id)
    assert "done: 8 sent" in final["text"] and "reply_markup" not in final
    assert any("sent" in e["plain"] and "Queued" in e["plain"] for e in api.edits)  # progress shown
    for chat in READERS:
        [msg] = api.messages_for(chat)
        assert "Festival news" in msg.plain
    for address in INBOXES:
        [mail] = sink.to(address)
        assert mail.subject == "Clapper: Festival news: see x"
        assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [listing] = await say(api, ADMIN, "/announcements")
    assert f"#{draft.id}" in listing.plain and "8 sent, 0 failed" in listing.plain


async def test_admin_cancels_while_sending_and_discards_a_draft(engine, world):
    api, _sink, _cfg, _app = world
    await say(api, ADMIN, "/broadcast")
    _preview, question = await say(api, ADMIN, "Second one", count=2)
    [draft] = announcements(engine)
    await tap(api, ADMIN, question.message_id, f"bc:go:{draft.id}:t", user_id=ADMIN)
    with session_scope(engine) as s:  # as if a worker had sent two already
        rows = s.exec(select(Outbox).where(Outbox.announcement_id == draft.id).order_by(Outbox.id)).all()
        for row in rows[:2]:
            row.state = "sent"
            s.add(row)
    # A replayed "Cancel" (discard) of a queued announcement must not touch it.
    replay = await tap(api, ADMIN, question.message_id, f"bc:x:{draft.id}", user_id=ADMIN)
    assert "already sent" in replay["text"]
    answer = await tap(api, ADMIN, question.message_id, f"bc:stop:{draft.id}", user_id=ADMIN)
    assert answer["text"] == "Stopped."
    text = api.message(ADMIN, question.message_id)["text"]
    assert "cancelled: 2 sent before the stop, 3 withdrawn" in text
    with session_scope(engine) as s:
        states = sorted(r.state for r in s.exec(select(Outbox).where(Outbox.announcement_id == draft.id)))
    assert states == ["cancelled"] * 3 + ["sent"] * 2

    await say(api, ADMIN, "/broadcast")
    _preview, question = await say(api, ADMIN, "Never mind", count=2)
    second = announcements(engine)[-1]
    await tap(api, ADMIN, question.message_id, f"bc:x:{second.id}", user_id=ADMIN)
    assert "discarded" in api.message(ADMIN, question.message_id)["text"]
    assert announcements(engine)[-1].state == "cancelled"
    await say(api, ADMIN, "/broadcast")
    [aborted] = await say(api, ADMIN, "/cancel")
    assert "No announcement was sent" in aborted.plain


async def test_non_admins_cannot_broadcast_by_command_or_forged_buttons(engine, world):
    api, _sink, _cfg, _app = world
    [refused] = await say(api, 3001, "/broadcast")
    assert "only the bot's administrators" in refused.plain
    api.push_message(3001, "Everyone: free tickets!")  # not captured as an announcement
    await asyncio.sleep(0.5)
    [refused] = await say(api, 3001, "/announcements")
    assert "only the bot's administrators" in refused.plain
    [refused] = await say(api, -100500, "/broadcast", user_id=ADMIN, chat_type="group")
    assert "private chat" in refused.plain
    # An admin's draft exists; a reader forges its "send" button.
    await say(api, ADMIN, "/broadcast")
    _preview, question = await say(api, ADMIN, "Admins only", count=2)
    [draft] = announcements(engine)
    for data in (f"bc:go:{draft.id}:b", f"bc:stop:{draft.id}", f"bc:x:{draft.id}"):
        answer = await tap(api, 3001, question.message_id, data, user_id=3001)
        assert answer["text"] == "Only administrators can do that." and answer["show_alert"]
    answer = await tap(api, ADMIN, question.message_id, "bc:go:999999:zz", user_id=ADMIN)
    assert answer["text"] == "This button is no longer valid."
    [draft] = announcements(engine)
    assert draft.state == "draft"
    with session_scope(engine) as s:
        assert s.exec(select(Outbox)).all() == []


async def test_formatting_made_in_the_telegram_app_is_kept(engine, world):
    api, _sink, _cfg, _app = world
    await say(api, ADMIN, "/broadcast")
    text = "Hello bold <3 https://x.org"
    message = api._user_message(ADMIN, text, ADMIN, None, None, None, None)
    message["entities"] = [
        {"type": "bold", "offset": 6, "length": 4},
        {"type": "url", "offset": 14, "length": 13},
    ]
    before = len(api.messages_for(ADMIN))
    api.push_update({"message": message})
    preview, _question = (await api.wait_messages(ADMIN, before + 2, within=10))[before:]
    [draft] = announcements(engine)
    assert draft.body == "Hello <b>bold</b> &lt;3 https://x.org"
    assert preview.plain.endswith("Hello bold <3 https://x.org")
