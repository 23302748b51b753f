"""Who may do what (group admins, Clapper admins), and input that must not break the bot."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.app import build_application, polling
from digests import subscriptions
from digests.db import session_scope
from digests.models import Outbox, Source, Subscriber
from tests import bot_harness
from tests.bot_harness import ADMIN, Talk
from tests.fakes.botapi import FakeBotAPI

api, app, bot_settings = bot_harness.api, bot_harness.app, bot_harness.bot_settings

GROUP = -100777
OWNER, MEMBER = 11, 12


def followed(engine, chat_id) -> set[str]:
    return {t.value for t in subscriptions.list_subscriptions(engine, chat_id)}


async def test_group_admins_change_subscriptions_members_are_refused(app, api, engine):
    api.set_admins(GROUP, [OWNER])
    admin = Talk(api, GROUP, OWNER, chat_type="group", title="Film crew")
    member = Talk(api, GROUP, MEMBER, chat_type="group", title="Film crew")

    refused = await member.say("/subscribe Belgium")
    assert "only this group's administrators" in refused.plain
    assert followed(engine, GROUP) == set()
    for command in ("/unsubscribe all", "/frequency weekly", "/time 09:00", "/pause", "/stop"):
        assert "administrators" in (await member.say(command)).plain, command

    added = await admin.say("/subscribe@clapper_test_bot Belgium, Production")
    assert "Now following" in added.plain
    assert followed(engine, GROUP) == {"Belgium", "Production"}

    # Reading is open to everyone; buttons are checked like commands.
    listing = await member.say("/list")
    assert "Countries: Belgium" in listing.plain
    tap = await member.tap(listing, "r:c:Belgium")
    assert tap.answer["show_alert"] and "administrators" in tap.answer["text"]
    assert tap.edits == [] and followed(engine, GROUP) == {"Belgium", "Production"}
    tap = await member.tap(listing, "ua:y")
    assert "administrators" in tap.answer["text"] and followed(engine, GROUP) == {"Belgium", "Production"}

    tap = await admin.tap(listing, "r:c:Belgium")
    assert tap.answer["text"] == "Stopped following Belgium" and followed(engine, GROUP) == {"Production"}
    # Promotion and demotion are seen at once: roles are asked of Telegram every time.
    api.set_role(GROUP, OWNER, "member")
    assert "administrators" in (await admin.say("/subscribe France")).plain
    api.set_role(GROUP, MEMBER, "creator")
    assert "Now following" in (await member.say("/subscribe France")).plain


async def test_group_commands_for_other_bots_are_ignored(app, api):
    member = Talk(api, GROUP, MEMBER, chat_type="supergroup")
    await member.says_nothing(lambda: api.push_message(GROUP, "/weather@other_bot", user_id=MEMBER))
    await member.says_nothing(lambda: api.push_message(GROUP, "just chatting", user_id=MEMBER))
    unknown = await member.say("/dance@clapper_test_bot")
    assert "I don't know /dance" in unknown.plain


async def test_stats_for_admins_only(app, api, engine):
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.add(Source(name="cineuropa", url="https://cineuropa.org/", last_success_at=now,
                           last_new_articles=7))
        session.add(Source(name="broken", url="https://broken.example/", error_count=3,
                           last_error="HTTP 503 from https://broken.example/"))
        session.add(Subscriber(email="a@example.org", email_status="confirmed"))
        session.add(Outbox(channel="telegram", digest_key="digest:x#1/1", recipient="1", body="x",
                           state="sent", sent_at=now))
    outsider = Talk(api, 555)
    await outsider.say("/subscribe Belgium")
    refused = await outsider.say("/stats")
    assert "only for Clapper's administrators" in refused.plain
    assert "cineuropa" not in refused.plain and refused.reply_markup is None

    admin = Talk(api, ADMIN)
    stats = await admin.say("/stats")
    assert "Clapper stats" in stats.plain
    assert "1 active" in stats.plain and "1 confirmed" in stats.plain
    assert "Belgium (1)" in stats.plain
    assert "cineuropa: last ingest" in stats.plain and "7 new" in stats.plain
    assert "broken: never ingested; 3 failures in a row: HTTP 503" in stats.plain
    assert "1 by telegram" in stats.plain
    assert "Telegram: 0 queued, 0 sending, 1 sent in the last hour, now 0.0/s" in stats.plain
    assert "Email: 0 queued, 0 sending, 0 sent in the last hour" in stats.plain
    # The refresh button, forged by someone else, is refused and shows nothing.
    forged = await outsider.tap(stats.message_id, "adm:stats")
    assert forged.answer["show_alert"] and "administrators" in forged.answer["text"] and forged.edits == []
    own = await admin.tap(stats, "adm:stats")
    assert own.answer["show_alert"] is False
    # In a group even an admin gets no numbers.
    in_group = Talk(api, GROUP, ADMIN, chat_type="group")
    assert "private chat" in (await in_group.say("/stats")).plain


async def test_tampered_and_stale_callback_data(app, api, engine):
    me = Talk(api, 600)
    listing = await me.say("/subscribe Belgium")
    for data in ("s:c:Atlantis", "s:x:Belgium", "t:c:99:Belgium", "t:s:3:Funding", "p:-1", "p:abc",
                 "f:hourly", "pz:2", "bc", "r:c:", "x" * 64, "stop:maybe", "é" * 30, "adm:stats:now"):
        tap = await me.tap(listing, data)
        assert tap.answer["text"] == "This button no longer works. Send the command again.", data
        assert tap.edits == []
    assert followed(engine, 600) == {"Belgium"}
    # A button under a message that is gone: the tap still works, the redraw is skipped quietly.
    tap = await me.tap(999999, "r:c:Belgium")
    assert tap.answer["text"] == "Stopped following Belgium" and followed(engine, 600) == set()


async def test_bad_input_gets_a_clear_reply_or_silence(app, api, engine):
    me = Talk(api, 700)
    too_long = await me.say("/subscribe " + "Belgium " * 300)
    assert "too long" in too_long.plain and followed(engine, 700) == set()
    many = await me.say("/subscribe " + ",".join(["UK"] * 60 + [f"x{i}" for i in range(60)]))
    assert "a lot of names" in many.plain and followed(engine, 700) == set()
    assert "too long" in (await me.say("/latest " + "x" * 2000)).plain
    nonsense = await me.say("/subscribe qwxz, 12345, <script>")
    assert "&lt;script&gt;" in nonsense.text and "not a country or section" in nonsense.plain
    assert "I don't know /frobnicate" in (await me.say("/frobnicate now")).plain
    assert "commands only" in (await me.say("hello bot")).plain
    # Edited messages and channel posts: no answer, no change, no crash.
    await me.says_nothing(lambda: api.push_edited_message(700, "/subscribe France"))
    await me.says_nothing(lambda: api.push_channel_post(-100999, "/subscribe France"))
    assert followed(engine, 700) == set()
    assert "Now following" in (await me.say("/subscribe France")).plain


async def test_errors_are_logged_with_update_id_and_reported(app, api, caplog):
    caplog.set_level(logging.INFO, logger="clapper.bot")
    me = Talk(api, 800)
    api.inject_errors("500", count=1, chat_id=800)  # the reply to the next update fails
    update = api.push_message(800, "/list")
    apology = (await api.wait_messages(800, 1, within=10))[-1]
    assert "something went wrong" in apology.plain and str(update["update_id"]) in apology.plain
    notice = (await api.wait_messages(ADMIN, 1, within=10))[-1]
    assert f"update {update['update_id']}" in notice.plain and "NetworkError" in notice.plain
    assert any(f"update {update['update_id']} failed" in r.getMessage() for r in caplog.records)
    # The bot carries on.
    assert "follows nothing" in (await me.say("/list")).plain


async def test_reply_to_a_blocked_chat_marks_it(app, api, engine, bot_settings):
    me = Talk(api, 900)
    await me.say("/subscribe Belgium")
    api.block(900)
    api.push_message(900, "/list")
    await api.wait_for(lambda: subscriptions.chat_settings(engine, bot_settings, 900).blocked, 10)
    api.unblock(900)
    assert "Welcome back" in (await me.say("/start")).plain
    assert not subscriptions.chat_settings(engine, bot_settings, 900).blocked


async def test_flood_control_is_waited_out_and_the_reply_arrives(app, api):
    me = Talk(api, 950)
    api.inject_errors("429", count=1, chat_id=950, retry_after=1)
    reply = await me.say("/list")
    assert "follows nothing" in reply.plain
    assert len(api.messages_for(950)) == 1 and api.messages_for(ADMIN) == []
    assert [r["status"] for r in api.rejected if r["chat_id"] in (950, "950")] == [429]


async def test_quick_commands_under_the_per_chat_limit_lose_no_reply(settings, engine):
    # Telegram allows about one message a second per chat; a reader typing fast must still get
    # every answer, later rather than never.
    async with FakeBotAPI(per_chat_interval=1.0) as server:
        tuned = settings.model_copy(update={
            "telegram_bot_token": server.token, "telegram_api_base_url": server.base_url,
            "telegram_api_file_url": server.base_file_url})
        async with polling(build_application(tuned, engine), long_poll=1):
            for text in ("/list", "/settings", "/help"):
                server.push_message(960, text)
            replies = await server.wait_messages(960, 3, within=15)
    assert "follows nothing" in replies[0].plain and "Clapper commands" in replies[2].plain
    assert any(r["status"] == 429 for r in server.rejected)  # the limit was really hit


async def test_group_upgraded_to_supergroup_keeps_its_subscriptions(app, api, engine):
    api.set_admins(GROUP, [OWNER])
    admin = Talk(api, GROUP, OWNER, chat_type="group", title="Film crew")
    await admin.say("/subscribe Belgium")
    new_id = -1009876543210
    api.push_update({"message": {
        "message_id": 99, "date": 0, "chat": {"id": GROUP, "type": "group", "title": "x"},
        "from": {"id": OWNER, "is_bot": False, "first_name": "O"}, "migrate_to_chat_id": new_id}})
    await admin.barrier()
    assert followed(engine, new_id) == {"Belgium"} and followed(engine, GROUP) == set()


async def test_removed_from_a_group_marks_it_blocked(app, api, engine, bot_settings):
    api.set_admins(GROUP, [OWNER])
    admin = Talk(api, GROUP, OWNER, chat_type="group", title="Film crew")
    await admin.say("/subscribe Belgium")
    bot_user = api.bot_user
    member = {"user": bot_user, "status": "member"}
    api.push_update({"my_chat_member": {
        "chat": {"id": GROUP, "type": "group", "title": "Film crew"},
        "from": {"id": OWNER, "is_bot": False, "first_name": "O"}, "date": 0,
        "old_chat_member": member, "new_chat_member": {"user": bot_user, "status": "left"}}})
    await api.wait_for(lambda: subscriptions.chat_settings(engine, bot_settings, GROUP).blocked, 10)
