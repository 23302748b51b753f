from sqlalchemy import inspect
from sqlmodel import select

from digests import db
from digests.models import Subscriber, Subscription


def test_migrations_create_every_table_and_match_models(engine):
    names = set(inspect(engine).get_table_names())
    tables = {"article", "articletag", "source", "subscriber", "subscription", "outbox", "announcement"}
    assert tables <= names
    assert db.is_up_to_date(engine)
    # alembic check: the models and the migrations describe the same schema
    from alembic import command

    cfg = db.alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)


def test_upgrade_is_idempotent(db_url):
    db.upgrade(db_url)
    db.upgrade(db_url)
    assert db.is_up_to_date(db.get_engine(db_url))


def test_deleting_a_subscriber_cascades_to_subscriptions(engine):
    with db.session_scope(engine) as s:
        sub = Subscriber(telegram_chat_id=-1001234567890123)
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, kind="country", value="Belgium"))
    with db.session_scope(engine) as s:
        s.delete(s.get(Subscriber, sub.id))
    with db.session_scope(engine) as s:
        assert s.exec(select(Subscription)).all() == []
