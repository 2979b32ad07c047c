"""The portal's own login, and the CSRF token its forms carry.

Deliberately small: one user and password from the configuration
(``PORTAL_USER``, ``PORTAL_PASSWORD``), remembered in Flask's signed session
cookie. A real portal would use its user database; what matters for the
on-call page is that it is not open to anyone, and that a button which changes
something (Replay) cannot be pressed from another site: every POST carries a
per-session token, compared in constant time, or is refused with 400.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

blueprint = Blueprint("auth", __name__)
_F = TypeVar("_F", bound=Callable[..., Any])


def init_auth(app: Flask) -> None:
    """Mount /login and /logout, and check the CSRF token of every POST to the portal's pages."""
    app.register_blueprint(blueprint)
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _check_csrf() -> None:
        # The bridge's own endpoints are called by Autotask and ilert, which authenticate
        # with their tokens; the portal's forms are the ones a browser posts.
        if request.method != "POST" or request.blueprint not in _PORTAL_BLUEPRINTS:
            return
        expected = session.get("csrf")
        given = request.form.get("csrf_token", "")
        if not expected or not hmac.compare_digest(str(expected).encode(), given.encode()):
            abort(400, "missing or wrong CSRF token")


#: Blueprints whose POSTs are the portal's own forms (the bridge's are not among them).
_PORTAL_BLUEPRINTS = {"auth", "oncall"}


def csrf_token() -> str:
    """This session's token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def login_required(view: _F) -> _F:
    """Send a visitor who has not logged in to the login page, and back afterwards."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not session.get("user"):
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _local(target: str | None) -> str:
    """Only a path on this site: ``next`` must not send the user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return url_for("home")
    return target


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    user, password = current_app.config.get("PORTAL_USER"), current_app.config.get("PORTAL_PASSWORD")
    configured = bool(user and password)
    if request.method == "GET":
        return render_template("login.html", configured=configured, error=None)
    if configured and _matches(request.form.get("username", ""), str(user)) \
            and _matches(request.form.get("password", ""), str(password)):
        session.clear()
        session["user"] = str(user)
        csrf_token()  # a new token for the new session
        return redirect(_local(request.args.get("next")))
    return render_template("login.html", configured=configured, error="Wrong user or password."), 401


@blueprint.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("home"))
