"""The approver admin page (Starlette + Jinja2, Japanese UI).

Routes (stable; scripts and tests drive them): GET/POST /login, POST /logout,
GET /held, GET /held/{id}, POST /held/{id}/release, POST /held/{id}/reject,
GET /audit, GET /audit.csv; and, without login, the sender's status page
GET /s/{token} and POST /s/{token}/withdraw (a signed link for one mail).

Each approver sees and decides only the holds routed to them (their own
department's, see ``approval.plan_route``); operators see everything.

Safety: every page but the login page needs a server-side session; every POST
checks the session's CSRF token and refuses cross-site requests (Sec-Fetch-Site);
no state changes on GET; Jinja2 autoescapes everything; every number from a
message is masked before rendering; strict security headers on every response.
"""

from __future__ import annotations

import datetime as dt
import inspect
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlp_gateway import timefmt
from dlp_gateway.approval import (
    ApprovalRefused,
    Approvals,
    default_mode,
    may_see,
    refusal,
    route_refusal,
)
from dlp_gateway.gateway import attachment_names
from dlp_gateway.status_link import LinkError, load_key, read_token
from dlp_gateway.store.held import (
    HeldFilter,
    HeldIntegrityError,
    HeldNotFound,
    HeldStateError,
)
from dlp_gateway.store.users import User, normalize_email
from dlp_gateway.web import evidence, render
from dlp_gateway.web.auth import (
    COOKIE_NAME,
    LOGIN_CSRF_COOKIE,
    LoginThrottle,
    Session,
    SessionStore,
    tokens_match,
)
from dlp_gateway.web.ops import ops_routes

HERE = Path(__file__).resolve().parent
STATUSES = ("held", "released", "rejected", "expired", "withdrawn")
PAGE_SIZE = 20
AUDIT_PAGE_LIMIT = 500
FINDINGS_SHOWN_PER_PART = 200

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

HTTP_MESSAGES = {
    404: "ページが見つかりません。",
    405: "この操作はこの方法では受け付けません"
    "（状態を変える操作は画面のボタンから行ってください）。",
}

Clock = Callable[[], dt.datetime]
Handler = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Adds the security headers to every HTTP response (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _environment(tz: str | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
    )
    env.filters["mask"] = render.mask_digits
    env.filters["jst"] = lambda value: render.local_time(value, tz)  # the configured zone
    env.filters["details"] = lambda value: render.detail_lines(value, tz)
    env.globals.update(
        EVENT_LABELS=render.EVENT_LABELS,
        RULE_LABELS=render.RULE_LABELS,
        TIMEZONE=tz or "Asia/Tokyo",
        ROLE_LABELS=render.ROLE_LABELS,
        STATUS_LABELS=render.STATUS_LABELS,
        TYPE_LABELS=render.TYPE_LABELS,
        MODE_LABELS=render.MODE_LABELS,
        UNSCANNABLE_LABELS=render.UNSCANNABLE_LABELS,
    )
    return env


class AdminApp:
    """Request handlers bound to one gateway."""

    def __init__(self, gateway: Any, clock: Clock | None = None):
        self.gw = gateway
        self.cfg = gateway.config
        self.sessions = SessionStore(gateway.db)
        self.throttle = LoginThrottle(gateway.db)
        self.approvals = Approvals(gateway)
        self.clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.env = _environment(self.cfg.timezone)

    # -- plumbing -----------------------------------------------------------------------

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        context.setdefault("user", None)
        context.setdefault("csrf_token", "")
        context.setdefault("patterns_status", getattr(self.gw, "patterns_status", None))
        html = self.env.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status)

    def refuse(
        self, request: Request, message: str, status: int, user: User | None = None,
        session: Session | None = None, public: bool = False,
    ) -> HTMLResponse:
        """An error page; ``public`` for the sender's status page (no login link)."""
        return self.page(
            request, "error.html",
            {"message": message, "status": status, "user": user, "public": public,
             "csrf_token": session.csrf_token if session else ""},
            status,
        )

    def _secure(self, request: Request) -> bool:
        return request.url.scheme == "https"

    def current(self, request: Request) -> tuple[Session, User] | None:
        session = self.sessions.get(
            request.cookies.get(COOKIE_NAME), self.cfg.session_idle_minutes, self.clock()
        )
        if session is None:
            return None
        user = self.gw.users.get(session.email)
        if user is None or not user.enabled:
            self.sessions.delete(request.cookies.get(COOKIE_NAME))
            return None
        return session, user

    @staticmethod
    def cross_site(request: Request) -> bool:
        """Browsers label cross-site requests; scripts send no such header."""
        return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")

    def login_required(self, handler: Callable[..., Awaitable[Response]]) -> Handler:
        async def wrapped(request: Request) -> Response:
            found = await run_in_threadpool(self.current, request)
            if found is None:
                if request.method == "GET":
                    return RedirectResponse(_login_url(request), status_code=303)
                return self.refuse(
                    request, "ログインしていないか、一定時間操作がなかったためログアウトしました。"
                    "もう一度ログインしてください。", 401,
                )
            session, user = found
            if request.method == "POST":
                if self.cross_site(request):
                    return self.refuse(request, "他のサイトからの送信は受け付けません。", 403,
                                       user, session)
                form = await request.form()
                if not tokens_match(session.csrf_token, _field(form, "csrf_token")):
                    return self.refuse(
                        request,
                        "フォームの確認用トークン（CSRF トークン）がないか、正しくありません。"
                        "画面を開き直してから操作してください。",
                        403, user, session,
                    )
                request.state.form = form
            return await handler(request, session, user)

        return wrapped

    # -- login / logout -----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self._login_page(request, error="", status=200)

    def _login_page(self, request: Request, error: str, status: int, email: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        response = self.page(
            request, "login.html",
            {"csrf_token": token, "error": error, "email": email,
             "next": _safe_next(request.query_params.get("next", ""))},
            status,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
            secure=self._secure(request), path="/login",
        )
        return response

    async def login(self, request: Request) -> Response:
        if self.cross_site(request):
            return self.refuse(request, "他のサイトからのログインは受け付けません。", 403)
        form = await request.form()
        email = normalize_email(_field(form, "email"))[:254]
        password = _field(form, "password")
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE)
        form_token = _field(form, "csrf_token")
        if not tokens_match(cookie_token or "", form_token):  # login CSRF: both, equal
            return self._login_page(
                request, "画面の有効期限が切れました。もう一度ログインしてください。", 403, email
            )
        if not email or not password:
            return self._login_page(
                request, "メールアドレスとパスワードを入力してください。", 400, email
            )
        now = self.clock()
        users = self.gw.users
        until = await run_in_threadpool(
            self.throttle.begin, email, self.cfg.lockout_failures, self.cfg.lockout_minutes, now
        )
        if until is not None:
            await run_in_threadpool(
                self.gw.audit.append, "login_failed", email, None,
                {"reason": "locked", "ip": _client(request)},
            )
            return self._login_page(
                request, "ログインの失敗が続いたため、一時的にロックされています。"
                f"{render.local_time(until, self.cfg.timezone)} 以降にもう一度お試しください。",
                429, email,
            )
        ok = await run_in_threadpool(users.verify_password, email, password)
        if not ok:
            locked = await run_in_threadpool(self.throttle.lock_end, email)
            details: dict[str, object] = {"reason": "bad_credentials", "ip": _client(request)}
            if locked and locked > now:
                details["locked_until"] = locked.isoformat(timespec="seconds")
            await run_in_threadpool(self.gw.audit.append, "login_failed", email, None, details)
            return self._login_page(
                request, "メールアドレスまたはパスワードが正しくありません。", 401, email
            )
        await run_in_threadpool(self.throttle.succeeded, email)
        await run_in_threadpool(self.sessions.purge_idle, self.cfg.session_idle_minutes, now)
        token, _session = await run_in_threadpool(self.sessions.create, email, now)
        await run_in_threadpool(
            self.gw.audit.append, "login", email, None, {"ip": _client(request)}
        )
        response = RedirectResponse(_safe_next(_field(form, "next")) or "/held", status_code=303)
        response.set_cookie(
            COOKIE_NAME, token, httponly=True, samesite="strict", secure=self._secure(request),
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout(self, request: Request, session: Session, user: User) -> Response:
        await run_in_threadpool(self.sessions.delete, request.cookies.get(COOKIE_NAME))
        await run_in_threadpool(self.gw.audit.append, "logout", user.email, None, {})
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    # -- held mail ----------------------------------------------------------------------

    def _list_rows(self, user: User, flt: HeldFilter) -> tuple[list[dict[str, Any]], list[str]]:
        now = self.clock()
        route = self.approvals.router()  # accounts read once per page, not once per row
        me = self.gw.users.get(user.email)
        my_department = me.department if me else None
        rows = []
        for m in self.gw.held.search(flt):
            r = route(m)
            if not may_see(user.email, user.role, my_department, m, r):
                continue
            due = timefmt.deadline(m.received, self.cfg.expire_hours)
            may_act = m.status == "held" and refusal(user.email, user.role, m) is None \
                and route_refusal(user.email, user.role, my_department, m, r) is None
            rows.append({
                "m": m,
                "why": render.why_held(m.counts, m.reasons, m.unscannable),
                "waited": render.waited(m.received, now),
                "left": timefmt.remaining(due, now),
                "due": due,
                "route": r,
                "may_act": may_act,
            })
        rules = sorted({r for row in rows for r in row["m"].rules})
        return rows, rules

    async def held_list(self, request: Request, session: Session, user: User) -> Response:
        q = request.query_params
        status = q.get("status", "held")
        if status not in STATUSES:
            return self.refuse(request, "状態の指定が正しくありません。", 400, user, session)
        flt = HeldFilter(
            status=status, q=q.get("q", "")[:200], sender=q.get("sender", "")[:200],
            recipient=q.get("recipient", "")[:200], department=q.get("department", "")[:200],
            rule=q.get("rule", "")[:100],
        )
        rows, rules = await run_in_threadpool(self._list_rows, user, flt)
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        page = min(page, pages)
        shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        query = {k: v for k, v in q.items() if k != "page" and v}
        return self.page(
            request, "held_list.html",
            {"user": user, "csrf_token": session.csrf_token, "rows": shown, "status": status,
             "statuses": STATUSES, "filters": flt, "rules": rules, "total": len(rows),
             "page": page, "pages": pages, "query": urlencode(query),
             "filtered": any(query.get(k) for k in ("q", "sender", "recipient", "department",
                                                    "rule"))},
        )

    def _get_held(self, held_id: str) -> Any:
        try:
            return self.gw.held.get(held_id)
        except KeyError:
            return None

    def _detail_context(self, held: Any, user: User) -> dict[str, Any]:
        body_findings = [f for f in held.findings if f.get("in_body")
                         or str(f.get("part") or "body") == "body"]
        try:
            raw = self.gw.held.raw(held.id)
            excerpt, integrity = render.body_excerpt(raw, findings=body_findings), True
            previews = evidence.table_previews(raw)
            attachments = sorted(attachment_names(raw))
        except Exception:  # tampered or missing spool file: say so, show nothing of it
            excerpt, integrity, previews, attachments = "", False, [], []
        parts = []
        for part, items in render.group_findings(held.findings):
            parts.append({
                "part": part,
                "summary": render.count_line(items),
                "groups": [
                    {"label": g.label, "record": g.record,
                     "cells": g.findings[:FINDINGS_SHOWN_PER_PART], "total": len(g.findings)}
                    for g in evidence.person_groups(items)
                ],
                "tables": [t for t in previews if t.part.split("/", 1)[0] == part],
            })
        shown_parts = {p["part"] for p in parts}
        extra_tables = [t for t in previews if t.part.split("/", 1)[0] not in shown_parts]
        route = self.approvals.route(held)
        due = timefmt.deadline(held.received, self.cfg.expire_hours)
        return {
            "m": held,
            "why": render.why_held(held.counts, held.reasons, held.unscannable),
            "waited": render.waited(held.received, self.clock()),
            "left": timefmt.remaining(due, self.clock()),
            "due": due,
            "excerpt": excerpt,
            "integrity": integrity,
            "parts": parts,
            "extra_tables": extra_tables,
            "attachments": attachments,
            "default_mode": default_mode(bool(attachments)),
            "people": held.counts.get("records") or evidence.people_total(held.findings),
            "approvals": self.approvals.store.for_message(held.id),
            "required": self.approvals.required_for(held),
            "blocked": self.approvals.refusal_for(user.email, user.role, held),
            "route": route,
            "rule_labels": [(r, render.RULE_LABELS.get(r, r)) for r in held.rules],
        }

    async def held_detail(self, request: Request, session: Session, user: User) -> Response:
        held = await run_in_threadpool(self._get_held, request.path_params["held_id"])
        if held is None:
            message = "指定された保留メールは見つかりません。"
            return self.refuse(request, message, 404, user, session)
        visible = await run_in_threadpool(self.approvals.visible, user.email, user.role, held)
        if not visible:
            return self.refuse(
                request, "このメールはあなたの担当ではないため表示できません"
                "（所属長は自分の所属の職員のメールだけを確認・承認できます）。",
                403, user, session,
            )
        context = await run_in_threadpool(self._detail_context, held, user)
        context.update(user=user, csrf_token=session.csrf_token,
                       notice=request.query_params.get("done", ""))
        return self.page(request, "held_detail.html", context)

    async def release(self, request: Request, session: Session, user: User) -> Response:
        held_id = request.path_params["held_id"]
        form = request.state.form
        try:
            outcome = await run_in_threadpool(
                self.approvals.approve, user.email, user.role, held_id,
                _field(form, "mode"), _field(form, "comment"), _field(form, "confirm") == "yes",
            )
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except ApprovalRefused as exc:
            return self.refuse(request, exc.message, exc.status, user, session)
        except Exception as exc:
            return self._action_failed(request, exc, user, session)
        done = "released" if outcome.released else "approved"
        return RedirectResponse(f"/held/{held_id}?done={done}", status_code=303)

    async def reject(self, request: Request, session: Session, user: User) -> Response:
        held_id = request.path_params["held_id"]
        try:
            await run_in_threadpool(
                self.approvals.reject, user.email, user.role, held_id,
                _field(request.state.form, "comment"),
            )
        except ApprovalRefused as exc:
            return self.refuse(request, exc.message, exc.status, user, session)
        except Exception as exc:
            return self._action_failed(request, exc, user, session)
        return RedirectResponse(f"/held/{held_id}?done=rejected", status_code=303)

    def _action_failed(
        self, request: Request, exc: Exception, user: User, session: Session
    ) -> Response:
        """Map the gateway's refusals to 4xx pages; anything else is a real error."""
        if isinstance(exc, HeldStateError):
            message, code = "このメールは既に他の承認者などにより処理されています。", 409
        elif isinstance(exc, HeldNotFound):
            message, code = "指定された保留メールは見つかりません。", 404
        elif isinstance(exc, HeldIntegrityError):
            message, code = "保存されたメールの内容が保留時と一致しません。承認できません。", 409
        elif type(exc).__name__ in ("ReleaseError", "EncryptError"):
            message, code = f"送信できませんでした: {exc}", 409
        else:
            raise exc
        return self.refuse(request, message, code, user, session)

    # -- audit --------------------------------------------------------------------------

    def _audit_rows(self, request: Request, limit: int | None) -> tuple[list[Any], dict[str, str]]:
        q = request.query_params
        filters = {k: q.get(k, "").strip() for k in ("event", "actor", "held_id", "since", "until")}
        entries = self.gw.audit.entries(
            event=filters["event"] or None,
            actor=filters["actor"] or None,
            held_id=filters["held_id"] or None,
            since=filters["since"] or None,
            until=filters["until"] or None,
            limit=limit,
            newest_first=limit is not None,
        )
        return entries, filters

    def _message_facts(self, held_ids: set[str]) -> dict[str, Any]:
        facts = {}
        for held_id in held_ids:
            held = self._get_held(held_id)
            if held is not None:
                facts[held_id] = held
        return facts

    async def audit_page(self, request: Request, session: Session, user: User) -> Response:
        entries, filters = await run_in_threadpool(self._audit_rows, request, AUDIT_PAGE_LIMIT)
        facts = await run_in_threadpool(
            self._message_facts, {e.held_id for e in entries if e.held_id}
        )
        return self.page(
            request, "audit.html",
            {"user": user, "csrf_token": session.csrf_token, "entries": entries,
             "filters": filters, "facts": facts, "limit": AUDIT_PAGE_LIMIT,
             "csv_query": request.url.query},
        )

    async def audit_csv(self, request: Request, session: Session, user: User) -> Response:
        entries, _filters = await run_in_threadpool(self._audit_rows, request, None)
        facts = await run_in_threadpool(
            self._message_facts, {e.held_id for e in entries if e.held_id}
        )
        body = render.audit_csv(entries, facts, self.cfg.timezone)
        stamp = self.clock().strftime("%Y%m%d-%H%M%S")
        return Response(
            body.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="audit-{stamp}.csv"'},
        )

    # -- the sender's status page (no login: a signed link for one mail) --------------

    def _claim(self, token: str) -> tuple[Any, str]:
        """The held mail a status token names, or (None, Japanese reason)."""
        try:
            claim = read_token(load_key(self.cfg.data_dir, self.gw.db), token, self.clock())
        except LinkError as exc:
            return None, str(exc)
        held = self._get_held(claim.held_id)
        if held is None:
            return None, "このメールの記録は見つかりません。"
        return held, ""

    def _status_page(self, request: Request, held: Any, token: str, notice: str = "",
                     status: int = 200) -> Response:
        route = self.approvals.route(held)
        due = timefmt.deadline(held.received, self.cfg.expire_hours)
        return self.page(
            request, "status.html",
            {"m": held, "token": token, "route": route, "due": due, "notice": notice,
             "left": timefmt.remaining(due, self.clock()),
             "why": render.why_held(held.counts, held.reasons, held.unscannable)},
            status,
        )

    async def status_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        held, reason = await run_in_threadpool(self._claim, token)
        if held is None:
            return self.refuse(request, reason, 404, public=True)
        return await run_in_threadpool(
            self._status_page, request, held, token, request.query_params.get("done", "")
        )

    async def withdraw(self, request: Request) -> Response:
        if self.cross_site(request):
            return self.refuse(request, "他のサイトからの送信は受け付けません。", 403, public=True)
        token = request.path_params["token"]
        held, reason = await run_in_threadpool(self._claim, token)
        if held is None:
            return self.refuse(request, reason, 404, public=True)
        if held.status != "held":
            return await run_in_threadpool(
                self._status_page, request, held, token, "too_late", 409
            )
        try:
            await run_in_threadpool(self.gw.withdraw, held.id, held.sender or "<>")
        except HeldStateError:
            held = await run_in_threadpool(self._get_held, held.id)
            return await run_in_threadpool(
                self._status_page, request, held, token, "too_late", 409
            )
        return RedirectResponse(f"/s/{token}?done=withdrawn", status_code=303)
    async def failures(self, request: Request, session: Session, user: User) -> Response:
        """Deliveries that failed where nobody could be told by mail (issue 10)."""
        rows = await run_in_threadpool(self.gw.queue.undeliverable, 100)
        return self.page(request, "failures.html",
                         {"user": user, "csrf_token": session.csrf_token, "rows": rows})

    async def index(self, request: Request) -> Response:
        return RedirectResponse("/held", status_code=303)


def _field(form: Any, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value if isinstance(value, str) else ""


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _safe_next(target: str) -> str:
    """Only local admin pages are valid post-login targets (no open redirect)."""
    if target.startswith(("/held", "/audit")) and "//" not in target and "\\" not in target:
        return target
    return ""


def _login_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/login?next=" + quote(target, safe="") if _safe_next(target) else "/login"


def create_app(gateway: Any, clock: Clock | None = None) -> Starlette:
    """The admin ASGI app for ``gateway`` (served by server.py on ``admin_listen``)."""
    admin = AdminApp(gateway, clock)
    need = admin.login_required
    routes = [
        Route("/", admin.index, methods=["GET"]),
        Route("/login", admin.login_form, methods=["GET"]),
        Route("/login", admin.login, methods=["POST"]),
        Route("/logout", need(admin.logout), methods=["POST"]),
        Route("/held", need(admin.held_list), methods=["GET"]),
        Route("/held/{held_id}", need(admin.held_detail), methods=["GET"]),
        Route("/held/{held_id}/release", need(admin.release), methods=["POST"]),
        Route("/held/{held_id}/reject", need(admin.reject), methods=["POST"]),
        Route("/audit", need(admin.audit_page), methods=["GET"]),
        Route("/audit.csv", need(admin.audit_csv), methods=["GET"]),
        Route("/s/{token}", admin.status_page, methods=["GET"]),
        Route("/s/{token}/withdraw", admin.withdraw, methods=["POST"]),
        Route("/failures", need(admin.failures), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *ops_routes(gateway),  # /healthz, /metrics (unauthenticated, counts only)
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        message = HTTP_MESSAGES.get(code, "リクエストを処理できませんでした。")
        return admin.refuse(request, message, code)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.admin = admin
    return app
