"""Phrase follows for an email reader: the preferences page over real HTTP, the digest delivered
to an aiosmtpd sink with its "why" line, and the CLI, import and export."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import select

from digests import emails, follows, importer, queue, web
from digests.db import session_scope
from digests.deliver import deliver_once_async
from digests.models import Follow
from tests.fakes.smtp import SMTPSink
from tests.test_follows_bot import add_article, soon
from tests.test_web import _path, _reader, running, web_settings  # noqa: F401 - fixture by name


def phrases_of(engine, subscriber_id) -> list[str]:
    return [f.phrase for f in follows.listed(engine, subscriber_id)]


async def test_preferences_field_to_the_delivered_email(engine, web_settings):  # noqa: F811
    ann = _reader(engine, web_settings)  # Belgium + Production, weekly
    path = _path(web_settings, ann, "preferences")
    add_article(engine, "https://example.org/dhont", "Lukas Dhont’s next feature enters production",
                "Shooting starts in Ghent.", countries=["Belgium"], sections=["Production"])
    add_article(engine, "https://example.org/befor", "Sales deal for Be-For-Films titles",
                "The Brussels agent signs Annecy winners.", countries=["France"], sections=["Sales"])
    add_article(engine, "https://example.org/before", "Before films, the festival of shorts",
                countries=["France"], sections=["Festivals"])
    async with (
        running(web.create_app(web_settings, engine)) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        page = await http.get(path)
        assert 'name="phrases"' in page.text and "whole words only, ignoring case and accents" in page.text
        form = {"country": ["Belgium"], "section": ["Production"], "frequency": "daily",
                "phrases": "be for films\n  Lukas   Dhont \n\nLUKAS DHONT"}
        saved = await http.post(path, data=form)
        assert saved.status_code == 200 and "Saved." in saved.text
        assert ">be for films\nLukas Dhont</textarea>" in saved.text
        assert phrases_of(engine, ann) == ["be for films", "Lukas Dhont"]
        refused = await http.post(path, data={**form, "phrases": "x"})
        assert "each name or phrase needs 2 to 60 characters" in refused.text
        over = await http.post(path, data={**form, "phrases": "\n".join(f"name {i}" for i in range(31))})
        assert "at most 30 names and phrases" in over.text
        assert phrases_of(engine, ann) == ["be for films", "Lukas Dhont"]
        # A form without the field (an older page) leaves the phrases alone.
        await http.post(path, data={"country": ["Belgium"], "section": ["Production"], "frequency": "daily"})
        assert phrases_of(engine, ann) == ["be for films", "Lukas Dhont"]

    async with SMTPSink() as sink:
        cfg = web_settings.model_copy(update=sink.settings())
        report = queue.queue_due(engine, cfg, now=soon() + timedelta(minutes=1), force=True)
        assert report.digests == 1
        await deliver_once_async(engine, cfg, worker_id="t")
    [mail] = sink.to("ann@example.org")
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    assert "Lukas Dhont’s next feature enters production" in text
    assert "Sales deal for Be-For-Films titles" in text
    assert "Before films" not in text  # "before" is not the word "be" followed by "for"
    assert "Sales · France · you follow be for films" in text
    dhont = text[text.index("Lukas Dhont’s next feature"):].split("\n")[1]
    assert "you follow" not in dhont  # Belgium + Production brought it anyway
    assert "you follow be for films" in html


def test_cli_follow_option_import_and_export(engine, settings):
    with session_scope(engine) as s:
        reader = emails.new_reader("bo@example.org", [], [], "daily", ['"Be For Films"', "Animas"])
        bo = emails.add_reader(s, settings, reader, confirmed=True).id
    assert phrases_of(engine, bo) == ["Be For Films", "Animas"]
    csv = ("email,countries,sections,frequency,follows\n"
           'cy@example.org,Belgium,,weekly,"Be For Films, Inc.;Lukas Dhont"\n'
           "di@example.org,,,weekly,x\n")
    with session_scope(engine) as s:
        report = importer.import_csv(s, settings, csv, confirmed=True)
    assert [e for _, e in report.imported] == ["cy@example.org"]
    assert [(b.line, b.email) for b in report.bad] == [(3, "di@example.org")]
    assert "cannot follow 'x'" in report.bad[0].reason
    with session_scope(engine) as s:
        exported = importer.export_csv(s).splitlines()
        keys = sorted(s.exec(select(Follow.key)).all())
    assert exported[0] == "email,countries,sections,frequency,follows,status"
    assert "bo@example.org,,,daily,Be For Films;Animas,confirmed" in exported
    assert "cy@example.org,Belgium,,weekly,\"Be For Films, Inc.;Lukas Dhont\",confirmed" in exported
    assert keys == ["animas", "be for films", "be for films inc", "lukas dhont"]
