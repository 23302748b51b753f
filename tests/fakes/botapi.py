"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 that enforces Telegram's rules.

    async with FakeBotAPI(per_chat_interval=None) as api:      # in the test's event loop
        bot = Bot(token=api.token, base_url=api.base_url)
    with FakeBotAPI.in_thread() as api: ...                      # its own loop in a thread
    python -m tests.fakes.botapi --port 8081                     # a subprocess (control API below)

Rules enforced (see telegram_rules.py): HTML parse-mode subset, 4096 characters after entity
parsing, callback_data 1-64 bytes, ~30 messages/s overall and one message per `per_chat_interval`
per chat (429 + retry_after), 403 for blocked chats, 400 + migrate_to_chat_id for migrated groups.
Bodies may be form-encoded (what PTB sends: non-string values JSON-encoded), multipart or JSON.

Inspection: `sent`, `messages_for(chat_id)`, `edits`, `deleted`, `commands`, `callback_answers`,
`rejected`, `requests`, `max_rate()`, `per_second()`. Updates for getUpdates: `push_message`,
`push_callback`, `push_edited_message`, `push_channel_post`, `push_update`.
Subprocess control: GET /_fake/state, POST /_fake/control {"action": "push_message", ...kwargs}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import telegram_rules as rules
from tests.fakes.telegram_rules import Rejected

DEFAULT_TOKEN = "123456789:TEST-fake-bot-token"

_INT_FIELDS = {"chat_id", "message_id", "user_id", "offset", "limit", "cache_time",
               "from_chat_id", "message_thread_id", "max_connections"}
_BOOL_FIELDS = {"disable_notification", "disable_web_page_preview", "show_alert", "drop_pending_updates",
                "protect_content", "allow_sending_without_reply", "is_anonymous"}
_JSON_FIELDS = {"reply_markup", "commands", "scope", "allowed_updates", "entities", "link_preview_options",
                "reply_parameters", "message_ids"}
_UPDATE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
                 "my_chat_member", "chat_member", "inline_query")


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str  # as sent (HTML source when parse_mode is HTML)
    plain: str  # after entity parsing
    parse_mode: str | None
    reply_markup: dict | None
    time: float  # time.monotonic() when accepted
    date: int
    params: dict = field(repr=False, default_factory=dict)

    def buttons(self) -> list[dict]:
        """Every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b for row in rows for b in row]

    def callback_data(self) -> list[str]:
        return [b["callback_data"] for b in self.buttons() if "callback_data" in b]


@dataclass
class _Fault:
    kind: str
    remaining: int
    retry_after: int
    methods: frozenset[str] | None
    chat_id: int | None
    delay: float


def _coerce(key: str, value: Any) -> Any:
    """Undo PTB's form encoding: ints, bools and objects arrive as JSON text."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError as exc:
            raise Rejected(400, f"Bad Request: can't parse {key} JSON object") from exc
    if key in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            if key == "chat_id":
                return value  # "@channelusername"
            raise Rejected(400, f"Bad Request: invalid {key} specified") from None
    if key == "timeout":
        try:
            return float(value)
        except ValueError:
            raise Rejected(400, "Bad Request: invalid timeout specified") from None
    if key in _BOOL_FIELDS:
        return value.strip().lower() in {"true", "1"}
    return value


class FakeBotAPI:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        global_rate: float | None = 30,
        per_chat_interval: float | None = 1.0,
        group_per_minute: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "clapper_test_bot",
        bot_name: str = "Clapper",
    ):
        self.token = token
        self.global_rate = global_rate or None
        self.per_chat_interval = per_chat_interval or None
        self.group_per_minute = group_per_minute or None
        self.host, self.port = host, port
        self.bot_user = {
            "id": int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True, "first_name": bot_name, "username": bot_username,
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
        }
        # Inspection state (read it from tests; lists only grow, so reading from another thread is safe).
        self.sent: list[SentMessage] = []
        self.edits: list[dict] = []
        self.deleted: list[tuple[int, int]] = []
        self.callback_answers: list[dict] = []
        self.rejected: list[dict] = []
        self.requests: list[dict] = []
        self.commands_by_scope: dict[str, list[dict]] = {}
        self.webhook: dict = {"url": ""}
        # Behaviour knobs.
        self.roles: dict[tuple[int, int], str] = {}
        self.blocked: dict[int, str] = {}
        self.migrated: dict[int, int] = {}
        self.missing_chats: set[int] = set()
        self._faults: list[_Fault] = []
        # Update queue and the chats/messages it refers to.
        self._lock = threading.Lock()
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._messages: dict[tuple[int, int], dict] = {}
        self._chats: dict[int, dict] = {}
        self._recent: deque[float] = deque()
        self._last_in_chat: dict[int, float] = {}
        self._group_recent: dict[int, deque[float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeBotAPI:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._closing = False
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/_fake/state", self._control_state)
        app.router.add_post("/_fake/control", self._control)
        # Long polls are woken on stop, so a short graceful period is enough.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[FakeBotAPI]:
        """The server on its own event loop in a daemon thread, for synchronous tests and benches."""
        api = cls(**kwargs)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(api.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(api.stop())
            loop.close()

        thread = threading.Thread(target=run, name="fake-bot-api", daemon=True)
        thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        try:
            yield api
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    # ---------------------------------------------------------------- knobs

    def block(self, chat_id: int, description: str | None = None) -> None:
        """The user blocked the bot (or the bot was kicked from the group): sends get 403."""
        self.blocked[chat_id] = description or (
            "Forbidden: bot was blocked by the user" if chat_id > 0
            else "Forbidden: bot was kicked from the group chat")

    def unblock(self, chat_id: int) -> None:
        self.blocked.pop(chat_id, None)

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: sends to the old id get 400 with migrate_to_chat_id."""
        self.migrated[chat_id] = new_chat_id
        old = self._chats.get(chat_id, {})
        self._chats[new_chat_id] = {"id": new_chat_id, "type": "supergroup",
                                    "title": old.get("title", "Group")}

    def forget(self, chat_id: int) -> None:
        """The bot never met this chat: sends get 400 "chat not found"."""
        self.missing_chats.add(chat_id)

    def set_role(self, chat_id: int, user_id: int, status: str) -> None:
        """getChatMember status: creator | administrator | member | restricted | left | kicked."""
        self.roles[(chat_id, user_id)] = status

    def set_admins(self, chat_id: int, user_ids: Iterable[int], creator: int | None = None) -> None:
        for uid in user_ids:
            self.set_role(chat_id, uid, "administrator")
        if creator is not None:
            self.set_role(chat_id, creator, "creator")

    def inject_errors(
        self,
        kind: str = "429",
        count: int = 1,
        *,
        retry_after: int = 1,
        methods: Iterable[str] | None = ("sendMessage",),
        chat_id: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next `count` matching calls fail: "429", "500", "502", or "timeout" (slow, then handled).

        `methods=None` matches every method; `chat_id` narrows to one chat.
        """
        if kind not in {"429", "500", "502", "timeout"}:
            raise ValueError(f"unknown fault kind {kind!r}")
        self._faults.append(_Fault(kind, count, retry_after, frozenset(methods) if methods else None,
                                   chat_id, delay))

    def clear_errors(self) -> None:
        self._faults.clear()

    # ---------------------------------------------------------------- inspection

    def messages_for(self, chat_id: int) -> list[SentMessage]:
        return [m for m in self.sent if m.chat_id == chat_id]

    def last_for(self, chat_id: int) -> SentMessage | None:
        found = self.messages_for(chat_id)
        return found[-1] if found else None

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The current state of a message (after edits), as Telegram would return it."""
        return self._messages.get((chat_id, message_id))

    @property
    def commands(self) -> list[dict]:
        """The default-scope command menu set with setMyCommands."""
        return self.commands_by_scope.get(self._scope_key(None, None), [])

    def per_second(self) -> dict[int, int]:
        """Messages accepted per whole second since the first one (for benches)."""
        if not self.sent:
            return {}
        start = self.sent[0].time
        counts: dict[int, int] = {}
        for m in self.sent:
            sec = int(m.time - start)
            counts[sec] = counts.get(sec, 0) + 1
        return counts

    def max_rate(self, window: float = 1.0) -> int:
        """The most messages accepted within any `window` seconds."""
        times = sorted(m.time for m in self.sent)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    @staticmethod
    def _poll(predicate: Callable[[], Any], deadline: float, within: float) -> Any:
        """One check of a wait: the truthy result, None to keep waiting, TimeoutError when late."""
        result = predicate()
        if not result and time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within}s")
        return result

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Poll `predicate` until it returns something truthy; TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            if result := self._poll(predicate, deadline, within):
                return result
            await asyncio.sleep(0.01)

    def wait_for_sync(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """`wait_for` for synchronous tests (the server running in its own thread)."""
        deadline = time.monotonic() + within
        while True:
            if result := self._poll(predicate, deadline, within):
                return result
            time.sleep(0.01)

    async def wait_messages(self, chat_id: int, count: int = 1, within: float = 5.0) -> list[SentMessage]:
        """Wait until `chat_id` has at least `count` messages from the bot; return all of them."""
        return await self.wait_for(
            lambda: (found if len(found := self.messages_for(chat_id)) >= count else None), within)

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    # ---------------------------------------------------------------- update injection

    def _user(self, user_id: int, first_name: str | None = None, username: str | None = None) -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        if username:
            user["username"] = username
        return user

    def _chat(self, chat_id: int, chat_type: str | None = None, title: str | None = None,
              user: dict | None = None) -> dict:
        known = self._chats.get(chat_id)
        if known and chat_type is None:
            return known
        chat_type = chat_type or ("private" if chat_id > 0 else
                                  "supergroup" if chat_id < -1_000_000_000_000 else "group")
        if chat_type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": (user or {}).get("first_name", "User")}
            if user and user.get("username"):
                chat["username"] = user["username"]
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or f"Chat {chat_id}"}
        self._chats[chat_id] = chat
        return chat

    def push_update(self, payload: dict) -> dict:
        """Queue a raw update (an `update_id` is assigned); returns it."""
        with self._lock:
            update = {"update_id": next(self._update_ids), **payload}
            self._updates.append(update)
        self._notify()
        return update

    def _notify(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def _user_message(self, chat_id: int, text: str, user_id: int | None, chat_type: str | None,
                      chat_title: str | None, first_name: str | None, username: str | None,
                      message_id: int | None = None) -> dict:
        user = self._user(user_id if user_id is not None else chat_id, first_name, username)
        message = {
            "message_id": message_id or next(self._message_ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id, chat_type, chat_title, user),
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0] if text.split() else text
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(command.encode("utf-16-le")) // 2}]
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def push_message(self, chat_id: int, text: str, *, user_id: int | None = None,
                     chat_type: str | None = None, chat_title: str | None = None,
                     first_name: str | None = None, username: str | None = None) -> dict:
        """A user writes `text` in `chat_id` (commands get their bot_command entity)."""
        message = self._user_message(chat_id, text, user_id, chat_type, chat_title, first_name, username)
        return self.push_update({"message": message})

    def push_edited_message(self, chat_id: int, text: str, *, message_id: int | None = None,
                            user_id: int | None = None, chat_type: str | None = None) -> dict:
        message = self._user_message(chat_id, text, user_id, chat_type, None, None, None, message_id)
        message["edit_date"] = int(time.time())
        return self.push_update({"edited_message": message})

    def push_channel_post(self, chat_id: int, text: str, *, title: str = "A channel") -> dict:
        chat = self._chat(chat_id, "channel", title)
        post = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                "sender_chat": chat, "text": text}
        if text.startswith("/"):
            post["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.push_update({"channel_post": post})

    def push_callback(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None,
                      first_name: str | None = None) -> dict:
        """A user taps an inline button with `data` under message `message_id`."""
        user = self._user(user_id if user_id is not None else chat_id, first_name)
        message = self._messages.get((chat_id, message_id)) or {
            "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
            "from": self.bot_user, "text": "…"}
        query_id = str(next(self._callback_ids) + 4_000_000_000)
        self._open_callbacks.add(query_id)
        return self.push_update({"callback_query": {
            "id": query_id, "from": user, "message": message,
            "chat_instance": str(abs(chat_id)), "data": data}})

    # ---------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        try:
            params = await self._params(request)
        except Rejected as exc:
            return self._error(exc.status, exc.description, exc.parameters)
        self.requests.append({"method": method, "params": params, "time": time.monotonic()})
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return self._error(404, "Not Found")
        fault = self._take_fault(method, params.get("chat_id"))
        if fault is not None:
            if fault.kind == "timeout":
                await asyncio.sleep(fault.delay)
            else:
                return self._fault_response(fault, method, params)
        try:
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except Rejected as exc:
            self.rejected.append({"method": method, "chat_id": params.get("chat_id"), "status": exc.status,
                                  "description": exc.description, "time": time.monotonic()})
            return self._error(exc.status, exc.description, exc.parameters)
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> dict:
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.read()
            if body:
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise Rejected(400, "Bad Request: can't parse JSON") from exc
                if isinstance(data, dict):
                    raw.update(data)
        elif request.can_read_body:
            form = await request.post()
            raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        return {k: _coerce(k, v) for k, v in raw.items()}

    def _error(self, status: int, description: str, parameters: dict | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    def _take_fault(self, method: str, chat_id: Any) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining <= 0:
                continue
            if fault.methods is not None and method not in fault.methods:
                continue
            if fault.chat_id is not None and fault.chat_id != chat_id:
                continue
            fault.remaining -= 1
            return fault
        return None

    def _fault_response(self, fault: _Fault, method: str, params: dict) -> web.Response:
        self.rejected.append({"method": method, "chat_id": params.get("chat_id"), "status": int(fault.kind),
                              "description": f"injected {fault.kind}", "time": time.monotonic()})
        if fault.kind == "429":
            return self._error(429, f"Too Many Requests: retry after {fault.retry_after}",
                               {"retry_after": fault.retry_after})
        if fault.kind == "502":
            # Telegram's 502s come from its front proxy as HTML, not JSON.
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body></body></html>")
        return self._error(500, "Internal Server Error")

    async def _control_state(self, request: web.Request) -> web.Response:
        chat = request.query.get("chat_id")
        sent = self.messages_for(int(chat)) if chat else self.sent
        return web.json_response({
            "sent": [{k: v for k, v in asdict(m).items() if k != "params"} for m in sent],
            "edits": self.edits, "deleted": self.deleted, "callback_answers": self.callback_answers,
            "commands": self.commands, "rejected": self.rejected, "max_rate": self.max_rate(),
            "per_second": self.per_second(), "pending_updates": self.pending_updates(),
        })

    _CONTROL_ACTIONS = {"push_message", "push_callback", "push_edited_message", "push_channel_post",
                        "push_update", "block", "unblock", "migrate", "forget", "set_role", "set_admins",
                        "inject_errors", "clear_errors"}

    async def _control(self, request: web.Request) -> web.Response:
        body = await request.json()
        action = body.pop("action", "")
        if action not in self._CONTROL_ACTIONS:
            return web.json_response({"ok": False, "error": f"unknown action {action!r}"}, status=400)
        result = getattr(self, action)(**body)
        return web.json_response({"ok": True, "result": result})

    # ---------------------------------------------------------------- Bot API methods

    def _m_getme(self, _params: dict) -> dict:
        return self.bot_user

    async def _m_getupdates(self, params: dict) -> list[dict]:
        if self.webhook.get("url"):
            raise Rejected(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates") or None
        deadline = time.monotonic() + timeout
        assert self._wakeup is not None
        while True:
            self._wakeup.clear()
            with self._lock:
                if offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                elif offset < 0:
                    self._updates = self._updates[offset:]
                ready = [u for u in self._updates
                         if not allowed or any(k in u for k in allowed)][:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closing:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _m_deletewebhook(self, params: dict) -> bool:
        self.webhook = {"url": ""}
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        return True

    def _m_setwebhook(self, params: dict) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise Rejected(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {"url": url, "secret_token": params.get("secret_token")}
        return True

    def _m_getwebhookinfo(self, _params: dict) -> dict:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": self.pending_updates()}

    def _target_chat(self, params: dict) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise Rejected(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int) or chat_id in self.missing_chats:
            raise Rejected(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise Rejected(403, self.blocked[chat_id])
        if chat_id in self.migrated:
            raise Rejected(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           {"migrate_to_chat_id": self.migrated[chat_id]})
        return chat_id

    def _flood_check(self, chat_id: int, now: float) -> None:
        """Telegram's flood control: ~30 messages/s overall, ~1/s per chat, 20/min per group."""
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if self.global_rate and len(self._recent) >= self.global_rate:
            self._too_many(max(1, math.ceil(1.0 - (now - self._recent[0]))))
        if self.per_chat_interval and chat_id in self._last_in_chat:
            elapsed = now - self._last_in_chat[chat_id]
            if elapsed < self.per_chat_interval:
                self._too_many(max(1, math.ceil(self.per_chat_interval - elapsed)))
        if self.group_per_minute and chat_id < 0:
            window = self._group_recent.setdefault(chat_id, deque())
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.group_per_minute:
                self._too_many(max(1, math.ceil(60 - (now - window[0]))))

    def _too_many(self, retry_after: int) -> None:
        raise Rejected(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _m_sendmessage(self, params: dict) -> dict:
        chat_id = self._target_chat(params)
        plain = rules.message_text(params.get("text"), params.get("parse_mode"))
        markup = rules.reply_markup(params.get("reply_markup"))
        now = time.monotonic()
        self._flood_check(chat_id, now)
        self._recent.append(now)
        self._last_in_chat[chat_id] = now
        if self.group_per_minute and chat_id < 0:
            self._group_recent.setdefault(chat_id, deque()).append(now)
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": self._chat(chat_id), "from": self.bot_user, "text": plain}
        if markup:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        self.sent.append(SentMessage(chat_id, message["message_id"], str(params["text"]), plain,
                                     params.get("parse_mode"), markup, now, message["date"], params))
        return message

    def _existing(self, params: dict, action: str) -> dict:
        chat_id = self._target_chat(params)
        message_id = params.get("message_id")
        if params.get("inline_message_id"):
            raise Rejected(400, "Bad Request: inline messages are not supported by this fake")
        message = self._messages.get((chat_id, message_id)) if isinstance(message_id, int) else None
        if message is None:
            raise Rejected(400, f"Bad Request: message to {action} not found")
        return message

    def _m_editmessagetext(self, params: dict) -> dict:
        message = self._existing(params, "edit")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise Rejected(400, "Bad Request: message can't be edited")
        plain = rules.message_text(params.get("text"), params.get("parse_mode"))
        markup = rules.reply_markup(params.get("reply_markup"))
        if plain == message.get("text") and markup == message.get("reply_markup"):
            raise Rejected(400, "Bad Request: message is not modified: specified new message content and "
                                "reply markup are exactly the same as a current content and reply markup "
                                "of the message")
        message["text"] = plain
        message["edit_date"] = int(time.time())
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        self.edits.append({"chat_id": message["chat"]["id"], "message_id": message["message_id"],
                           "text": str(params["text"]), "plain": plain,
                           "parse_mode": params.get("parse_mode"), "reply_markup": markup,
                           "time": time.monotonic()})
        return message

    def _m_editmessagereplymarkup(self, params: dict) -> dict:
        message = self._existing(params, "edit")
        markup = rules.reply_markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise Rejected(400, "Bad Request: message is not modified: specified new message content and "
                                "reply markup are exactly the same as a current content and reply markup "
                                "of the message")
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        self.edits.append({"chat_id": message["chat"]["id"], "message_id": message["message_id"],
                           "text": None, "plain": None, "parse_mode": None, "reply_markup": markup,
                           "time": time.monotonic()})
        return message

    def _m_deletemessage(self, params: dict) -> bool:
        message = self._existing(params, "delete")
        key = (message["chat"]["id"], message["message_id"])
        del self._messages[key]
        self.deleted.append(key)
        return True

    def _m_answercallbackquery(self, params: dict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_callbacks:
            raise Rejected(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > rules.MAX_CALLBACK_ANSWER:
            raise Rejected(400, "Bad Request: MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.callback_answers.append({"callback_query_id": query_id, "text": text,
                                      "show_alert": bool(params.get("show_alert")), "time": time.monotonic()})
        return True

    @staticmethod
    def _scope_key(scope: Any, language: Any) -> str:
        return json.dumps([scope or {"type": "default"}, language or ""], sort_keys=True)

    def _m_setmycommands(self, params: dict) -> bool:
        commands = rules.bot_commands(params.get("commands"))
        self.commands_by_scope[self._scope_key(params.get("scope"), params.get("language_code"))] = commands
        return True

    def _m_getmycommands(self, params: dict) -> list[dict]:
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        return self.commands_by_scope.get(key, [])

    def _m_deletemycommands(self, params: dict) -> bool:
        self.commands_by_scope.pop(self._scope_key(params.get("scope"), params.get("language_code")), None)
        return True

    def _m_getchatmember(self, params: dict) -> dict:
        chat_id = params.get("chat_id")
        user_id = params.get("user_id")
        if not isinstance(chat_id, int) or chat_id in self.missing_chats:
            raise Rejected(400, "Bad Request: chat not found")
        if not isinstance(user_id, int):
            raise Rejected(400, "Bad Request: invalid user_id specified")
        default = "creator" if chat_id == user_id else "member"
        status = self.roles.get((chat_id, user_id), default)
        user = self._user(user_id)
        if user_id == self.bot_user["id"]:
            user = self.bot_user
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update({flag: True for flag in (
                "can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                "can_post_stories", "can_edit_stories", "can_delete_stories")}, is_anonymous=False)
        elif status == "restricted":
            member.update({flag: False for flag in (
                "is_member", "can_send_messages", "can_send_audios", "can_send_documents",
                "can_send_photos", "can_send_videos", "can_send_video_notes", "can_send_voice_notes",
                "can_send_polls", "can_send_other_messages", "can_add_web_page_previews",
                "can_change_info", "can_invite_users", "can_pin_messages", "can_manage_topics")},
                until_date=0)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _m_getchat(self, params: dict) -> dict:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id in self.missing_chats:
            raise Rejected(400, "Bad Request: chat not found")
        return {**self._chat(chat_id), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                        "unique_gifts": False, "premium_subscription": False}}

    def _m_sendchataction(self, params: dict) -> bool:
        self._target_chat(params)
        return True

    def _m_close(self, _params: dict) -> bool:
        return True

    def _m_logout(self, _params: dict) -> bool:
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API for tests and benches.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--global-rate", type=float, default=30, help="messages/s overall; 0 = off")
    parser.add_argument("--per-chat-interval", type=float, default=1.0, help="seconds; 0 = off")
    parser.add_argument("--group-per-minute", type=int, default=0, help="0 = off")
    args = parser.parse_args(argv)

    async def serve() -> None:
        api = FakeBotAPI(args.token, global_rate=args.global_rate, per_chat_interval=args.per_chat_interval,
                         group_per_minute=args.group_per_minute, host=args.host, port=args.port)
        async with api:
            print(f"fake Bot API listening: base_url={api.base_url} token={api.token}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
