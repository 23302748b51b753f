"""The fake Bot API answers like Telegram: through PTB's real client and through raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from tests.fakes.botapi import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def api():
    async with FakeBotAPI(per_chat_interval=None, global_rate=None) as server:
        yield server


@pytest.fixture
async def bot(api):
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


def _seconds(value) -> float:
    """RetryAfter.retry_after is an int in PTB 22 and a timedelta later."""
    return value if isinstance(value, int | float) else value.total_seconds()


def _keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("tap", callback_data=data)]])


# ------------------------------------------------------------------ protocol


async def test_get_me_and_form_encoded_send_through_ptb(api, bot):
    me = await bot.get_me()
    assert me.is_bot and me.username == "clapper_test_bot"
    message = await bot.send_message(42, "<b>Hi</b> &amp; welcome", parse_mode="HTML",
                                      reply_markup=_keyboard("sub:c:Belgium"))
    assert message.text == "Hi & welcome" and message.chat.id == 42
    [sent] = api.messages_for(42)
    assert sent.text == "<b>Hi</b> &amp; welcome" and sent.plain == "Hi & welcome"
    assert sent.parse_mode == "HTML" and sent.callback_data() == ["sub:c:Belgium"]


async def test_raw_http_form_json_token_and_unknown_method(api):
    async with httpx.AsyncClient(base_url=api.base_url + api.token) as http:
        form = await http.post("/sendMessage", data={
            "chat_id": "7", "text": "from a form",
            "reply_markup": json.dumps({"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]})})
        assert form.status_code == 200 and form.json()["result"]["chat"]["id"] == 7
        as_json = await http.post("/sendMessage", json={"chat_id": 8, "text": "from json"})
        assert as_json.json()["ok"] is True
        query = await http.get("/getMe")
        assert query.json()["result"]["is_bot"] is True
        unknown = await http.post("/sendTelepathy", json={})
        assert unknown.status_code == 404 and unknown.json()["ok"] is False
        empty = await http.post("/sendMessage", json={"chat_id": 8})
        assert empty.status_code == 400
        assert empty.json()["description"] == "Bad Request: message text is empty"
    async with httpx.AsyncClient() as http:
        wrong = await http.post(f"{api.base_url}999:wrong/getMe")
        assert wrong.status_code == 401
    assert [m.chat_id for m in api.sent] == [7, 8]
    assert api.sent[0].reply_markup == {"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}


# ------------------------------------------------------------------ HTML subset and length

ACCEPTED_HTML = [
    "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins>",
    "<s>s</s><strike>k</strike><del>d</del><tg-spoiler>x</tg-spoiler>",
    '<span class="tg-spoiler">hidden</span> <a href="https://example.org/?a=1&amp;b=2">link</a>',
    '<pre><code class="language-python">x = 1 &lt; 2</code></pre> <code>y</code>',
    "<blockquote>quote</blockquote> <blockquote expandable>more</blockquote>",
    "<b>bold <i>and italic</i></b> 5 &gt; 3 &quot;q&quot; &#233; &#x1F3AC; raw > is fine",
]
REFUSED_HTML = [
    "line<br>break",
    "<div>block</div>",
    "<p>para</p>",
    "<b>never closed",
    "closed</b> only",
    "<b><i>crossed</b></i>",
    "a < b",
    "AT&T",
    "&nbsp;space",
    "<span>plain span</span>",
    '<a href="javascript:alert(1)">x</a>',
    "<code><b>nested in code</b></code>",
]


@pytest.mark.parametrize("text", ACCEPTED_HTML)
async def test_allowed_html_is_accepted(bot, text):
    assert (await bot.send_message(1, text, parse_mode="HTML")).text


@pytest.mark.parametrize("text", REFUSED_HTML)
async def test_html_outside_the_subset_is_refused(api, bot, text):
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(1, text, parse_mode="HTML")
    assert api.sent == [] and api.rejected[-1]["status"] == 400


async def test_without_parse_mode_markup_is_plain_text(bot):
    message = await bot.send_message(1, "<div>not html</div> & AT&T")
    assert message.text == "<div>not html</div> & AT&T"


async def test_length_counts_text_after_entity_parsing(api, bot):
    await bot.send_message(1, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(1, "&lt;" * 4096, parse_mode="HTML")  # 16384 bytes of source, 4096 shown
    await bot.send_message(1, "🎬" * 4096)  # scalars, not UTF-16 units
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(1, "a" * 4097)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(1, "<i>" + "&amp;" * 4097 + "</i>", parse_mode="HTML")
    assert len(api.sent) == 3


async def test_callback_data_is_1_to_64_bytes(api, bot):
    await bot.send_message(1, "ok", reply_markup=_keyboard("x" * 64))
    await bot.send_message(1, "ok", reply_markup=_keyboard("é" * 32))  # 64 bytes
    for data in ("x" * 65, "é" * 33):
        with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
            await bot.send_message(1, "no", reply_markup=_keyboard(data))
    async with httpx.AsyncClient() as http:
        empty = await http.post(f"{api.base_url}{api.token}/sendMessage", json={
            "chat_id": 1, "text": "no",
            "reply_markup": {"inline_keyboard": [[{"text": "t", "callback_data": ""}]]}})
    assert empty.status_code == 400 and "BUTTON_DATA_INVALID" in empty.json()["description"]
    assert len(api.sent) == 2


# ------------------------------------------------------------------ flood control


async def test_one_message_per_interval_per_chat():
    async with FakeBotAPI(per_chat_interval=0.3, global_rate=None) as api, \
            Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(5, "first")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(5, "too soon")
        assert _seconds(caught.value.retry_after) == 1  # Telegram's retry_after is whole seconds
        await bot.send_message(6, "another chat is fine")
        await asyncio.sleep(0.35)
        await bot.send_message(5, "later")
        assert [m.text for m in api.messages_for(5)] == ["first", "later"]


async def test_thirty_messages_per_second_overall():
    async with FakeBotAPI(per_chat_interval=None, global_rate=30) as api, \
            Bot(api.token, base_url=api.base_url, request=HTTPXRequest(connection_pool_size=50)) as bot:
        results = await asyncio.gather(*(bot.send_message(1000 + i, f"m{i}") for i in range(45)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, RetryAfter)]
        assert len(api.sent) == 30 and len(refused) == 15
        assert api.max_rate() == 30
        assert all(_seconds(r.retry_after) >= 1 for r in refused)
        # The window slides: a second later there is room again.
        await asyncio.sleep(1.05)
        await bot.send_message(1, "room again")
        assert sum(api.per_second().values()) == 31


async def test_raw_429_body_has_retry_after():
    async with FakeBotAPI(per_chat_interval=5, global_rate=None) as api, httpx.AsyncClient() as http:
        url = f"{api.base_url}{api.token}/sendMessage"
        assert (await http.post(url, data={"chat_id": "3", "text": "a"})).status_code == 200
        again = await http.post(url, data={"chat_id": "3", "text": "b"})
        body = again.json()
        assert again.status_code == 429 and body["error_code"] == 429
        assert body["parameters"]["retry_after"] == 5
        assert body["description"] == "Too Many Requests: retry after 5"


async def test_group_minute_limit_when_enabled():
    async with FakeBotAPI(per_chat_interval=None, global_rate=None, group_per_minute=2) as api, \
            Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(-100, "1")
        await bot.send_message(-100, "2")
        with pytest.raises(RetryAfter):
            await bot.send_message(-100, "3")
        await bot.send_message(100, "private chats are not limited per minute")
        assert len(api.sent) == 3


# ------------------------------------------------------------------ failures


async def test_blocked_chat_gets_403_and_unblock_restores(api, bot):
    api.block(9)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(9, "hello?")
    api.block(-9)
    with pytest.raises(Forbidden, match="(?i)kicked"):
        await bot.send_message(-9, "hello?")
    api.unblock(9)
    await bot.send_message(9, "back")
    assert [m.chat_id for m in api.sent] == [9]


async def test_migrated_group_gives_new_chat_id(api, bot):
    api.migrate(-500, -1001234567890)
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(-500, "old id")
    assert caught.value.new_chat_id == -1001234567890
    await bot.send_message(-1001234567890, "new id")
    async with httpx.AsyncClient() as http:
        raw = await http.post(f"{api.base_url}{api.token}/sendMessage", json={"chat_id": -500, "text": "x"})
    assert raw.status_code == 400 and raw.json()["parameters"] == {"migrate_to_chat_id": -1001234567890}


async def test_injected_errors_fire_count_times(api, bot):
    api.inject_errors("429", count=1, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(1, "a")
    assert _seconds(caught.value.retry_after) == 3
    api.inject_errors("500", count=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(1, "b")
    api.inject_errors("502", count=1)
    with pytest.raises(NetworkError) as bad_gateway:
        await bot.send_message(1, "c")
    assert not isinstance(bad_gateway.value, BadRequest)
    api.inject_errors("500", count=1, chat_id=2)
    await bot.send_message(1, "other chats unaffected")
    with pytest.raises(NetworkError):
        await bot.send_message(2, "d")
    await bot.send_message(2, "e")
    assert [m.text for m in api.sent] == ["other chats unaffected", "e"]


async def test_injected_timeout_delays_then_delivers(api, bot):
    api.inject_errors("timeout", count=1, delay=0.5)
    with pytest.raises(TimedOut):
        await bot.send_message(1, "slow", read_timeout=0.1)
    # Like Telegram, the slow request still went through: a retry would duplicate it.
    await api.wait_for(lambda: api.sent)
    assert api.sent[0].text == "slow"


async def test_unknown_chat_is_not_found(api, bot):
    api.forget(77)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(77, "anyone?")


# ------------------------------------------------------------------ updates


async def test_long_polling_waits_for_a_pushed_update_and_honours_offset(api, bot):
    started = time.monotonic()
    empty = await bot.get_updates(timeout=0.3)
    assert empty == () and time.monotonic() - started >= 0.25

    async def later():
        await asyncio.sleep(0.2)
        api.push_message(10, "/start", first_name="Ann")

    task = asyncio.create_task(later())
    started = time.monotonic()
    [update] = await bot.get_updates(timeout=5)
    await task
    assert time.monotonic() - started < 2, "long poll must return as soon as an update arrives"
    assert update.message.text == "/start" and update.message.from_user.first_name == "Ann"
    assert update.message.entities[0].type == "bot_command"
    api.push_message(10, "second")
    again = await bot.get_updates(offset=update.update_id, timeout=0)
    assert [u.message.text for u in again] == ["/start", "second"]
    confirmed = await bot.get_updates(offset=again[-1].update_id + 1, timeout=0)
    assert confirmed == () and api.pending_updates() == 0


async def test_group_edited_channel_and_callback_updates(api, bot):
    api.push_message(-200, "/list@clapper_test_bot", user_id=11, chat_type="group", chat_title="Crew")
    api.push_edited_message(11, "edited text")
    api.push_channel_post(-1009, "channel news")
    sent = await bot.send_message(11, "pick", reply_markup=_keyboard("x:1"))
    api.push_callback(11, sent.message_id, "x:1")
    updates = await bot.get_updates(timeout=0)
    assert updates[0].message.chat.type == "group" and updates[0].message.from_user.id == 11
    assert updates[1].edited_message.text == "edited text"
    assert updates[2].channel_post.chat.type == "channel"
    query = updates[3].callback_query
    assert query.data == "x:1" and query.message.message_id == sent.message_id
    assert query.message.reply_markup.inline_keyboard[0][0].callback_data == "x:1"
    assert await bot.answer_callback_query(query.id, text="Done")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query.id, text="twice")
    assert api.callback_answers[0]["text"] == "Done"


async def test_webhook_blocks_get_updates_until_deleted(api, bot):
    await bot.set_webhook("https://example.org/hook")
    with pytest.raises(Conflict):
        await bot.get_updates(timeout=0)
    with pytest.raises(BadRequest):
        await bot.set_webhook("http://insecure.example.org/hook")
    api.push_message(1, "queued")
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == ()


# ------------------------------------------------------------------ other methods


async def test_edit_delete_and_not_modified(api, bot):
    sent = await bot.send_message(3, "v1", reply_markup=_keyboard("a"))
    edited = await bot.edit_message_text("<i>v2</i>", chat_id=3, message_id=sent.message_id,
                                         parse_mode="HTML")
    assert edited.text == "v2" and api.edits[-1]["reply_markup"] is None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("v2", chat_id=3, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.edit_message_text("<br>", chat_id=3, message_id=sent.message_id, parse_mode="HTML")
    await bot.edit_message_reply_markup(chat_id=3, message_id=sent.message_id, reply_markup=_keyboard("b"))
    assert api.message(3, sent.message_id)["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "b"
    assert await bot.delete_message(3, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("v3", chat_id=3, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(3, sent.message_id)
    assert api.deleted == [(3, sent.message_id)]


async def test_commands_are_validated_and_stored_per_scope(api, bot):
    await bot.set_my_commands([BotCommand("start", "Begin"), BotCommand("list", "Your subscriptions")])
    assert [c["command"] for c in api.commands] == ["start", "list"]
    assert [c.command for c in await bot.get_my_commands()] == ["start", "list"]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad-Command", "x")])
    with pytest.raises(BadRequest, match="(?i)bot_command_description_invalid"):
        await bot.set_my_commands([BotCommand("ok", "x" * 257)])


async def test_chat_member_roles(api, bot):
    api.set_admins(-300, [1], creator=2)
    api.set_role(-300, 4, "kicked")
    statuses = [(await bot.get_chat_member(-300, uid)).status for uid in (1, 2, 3, 4)]
    assert statuses == ["administrator", "creator", "member", "kicked"]
    assert (await bot.get_chat_member(55, 55)).status == "creator"  # a private chat's own user


# ------------------------------------------------------------------ other ways to run it


def test_in_thread_for_synchronous_code():
    with FakeBotAPI.in_thread(per_chat_interval=None) as api:
        url = f"{api.base_url}{api.token}"
        with httpx.Client() as http:
            assert http.post(f"{url}/sendMessage", data={"chat_id": "1", "text": "sync"}).json()["ok"]
            api.push_message(1, "hi")
            got = http.post(f"{url}/getUpdates", data={"timeout": "2"}).json()["result"]
        assert got[0]["message"]["text"] == "hi" and api.sent[0].text == "sync"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_subprocess_with_control_api():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.botapi", "--port", str(port), "--per-chat-interval", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert "listening" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        token = "123456789:TEST-fake-bot-token"
        with httpx.Client(base_url=base) as http:
            assert http.post(f"/bot{token}/sendMessage", json={"chat_id": 4, "text": "x"}).json()["ok"]
            assert http.post("/_fake/control", json={"action": "block", "chat_id": 4}).json()["ok"]
            assert http.post(f"/bot{token}/sendMessage", json={"chat_id": 4, "text": "y"}).status_code == 403
            http.post("/_fake/control", json={"action": "push_message", "chat_id": 4, "text": "/start"})
            state = http.get("/_fake/state").json()
            assert [m["text"] for m in state["sent"]] == ["x"] and state["pending_updates"] == 1
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
