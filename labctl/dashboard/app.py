"""The dashboard's web app (Starlette): routes, the viewer check, the event streams.

Pages are rendered on the server from the store; the one script (static/live.js) only applies
the event stream's updates and adds keyboard moves in the grid, so every page reads the same
with JavaScript off.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labctl.dashboard import auth, pages, palette
from labctl.dashboard.live import Hub, Viewer
from labctl.dashboard.store import Change, Store
from labctl.kube import Kube

STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
SECURITY_HEADERS = {
    # Everything is served from here; no inline script, no frames.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    kube: Kube,
    store: Store,
    *,
    authoriser: auth.Authoriser | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The app. Without an ``authoriser`` anyone who reaches it may look: serve it on loopback only
    (``allowed_hosts`` then stops DNS rebinding: a page elsewhere naming 127.0.0.1 by another host)."""
    hub = Hub(store)
    view = pages.Pages(kube, store)

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            if authoriser is not None:
                token = auth.bearer(request.headers, request.cookies)
                decision = await run_in_threadpool(authoriser.decide, token)
                if decision.status != 200:
                    return _refused(request, decision)
                request.state.user = decision.user
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        return run

    async def home(request: Request) -> Response:
        return HTMLResponse(view.cohorts(request, signed_in=authoriser is not None))

    async def cohort(request: Request) -> Response:
        return _page(view.cohort(request, request.path_params["cohort"], dict(request.query_params)))

    async def lab(request: Request) -> Response:
        params = request.path_params
        return _page(view.lab(request, params["cohort"], params["lab"]))

    async def learner(request: Request) -> Response:
        params = request.path_params
        return _page(await run_in_threadpool(view.learner, request, params["cohort"], params["learner"]))

    async def gradebook(request: Request) -> Response:
        name, fmt = request.path_params["cohort"], request.query_params.get("format", "csv")
        found = await run_in_threadpool(view.gradebook, name, fmt)
        if isinstance(found, str):
            return PlainTextResponse(found, status_code=404 if "not found" in found else 400)
        text, filename = found
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)

    async def events(request: Request) -> Response:
        viewer = Viewer(request.query_params.get("cohort"), request.query_params.get("learner"))

        def render(changes: list[Change], overflowed: bool) -> dict[str, Any]:
            return view.updates(viewer, changes, overflowed)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(hub.stream(viewer, render), media_type="text/event-stream", headers=headers)

    async def login_form(request: Request) -> Response:
        return HTMLResponse(view.login(request, next_url=_next(request.query_params.get("next"))))

    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(errors="replace"))
        token = (form.get("token") or [""])[0].strip()
        next_url = _next((form.get("next") or ["/"])[0])
        if authoriser is None:
            return RedirectResponse(next_url, status_code=303)
        decision = await run_in_threadpool(authoriser.decide, token)
        if decision.status != 200:
            return HTMLResponse(
                view.login(request, next_url=next_url, problem=decision.reason), status_code=decision.status
            )
        response = RedirectResponse(next_url, status_code=303)
        # HttpOnly: no script reads it; Strict: no other site's page sends it along.
        response.set_cookie(auth.COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/")
        return response

    async def healthz(request: Request) -> Response:
        synced = store.synced.is_set()
        return PlainTextResponse("ok" if synced else "syncing", 200 if synced else 503)

    async def palette_css(request: Request) -> Response:
        return Response(palette.css(), media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    def _refused(request: Request, decision: auth.Decision) -> Response:
        """401 and 403 as a page for browsers (401: the sign-in form), as text for anything else."""
        wants_html = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
        if wants_html and decision.status == 401:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            page = view.login(request, next_url=_next(here), problem=decision.reason)
            return HTMLResponse(page, status_code=401, headers=headers)
        if wants_html:
            return HTMLResponse(view.refused(request, decision), status_code=decision.status)
        return PlainTextResponse(decision.reason + "\n", status_code=decision.status, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.attach()
        yield

    routes = [
        Route("/", guarded(home)),
        Route("/cohorts/{cohort}", guarded(cohort)),
        Route("/cohorts/{cohort}/labs/{lab:path}", guarded(lab)),
        Route("/cohorts/{cohort}/learners/{learner}", guarded(learner)),
        Route("/cohorts/{cohort}/gradebook.csv", guarded(gradebook)),
        Route("/events", guarded(events)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/palette.css", palette_css),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _page(found: str | None) -> Response:
    if found is None:
        return HTMLResponse(pages.not_found(), status_code=404)
    return HTMLResponse(found)


def _next(url: str | None) -> str:
    """Where to go after signing in: a path of this site only, never another host."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url
