"""Who is asking, and may they: the signed-in user's role, checked in every handler.

Hiding a button is not enough (Gradio's private events stay callable through its queue), so
each handler asks ``Access.require`` for the right it needs before doing anything.
"""

from __future__ import annotations

from typing import Any

from ..errors import QAError
from ..users import User, Users

#: the user of a server started without a users file (loopback, or --no-auth): an editor
OPEN = User("anonymous", "editor")
WORDS = {"ask": "ask questions", "vote": "vote", "upload": "add or replace documents", "delete": "delete documents",
         "evaluate": "run evaluations", "review": "review feedback", "audit": "read the audit log",
         "users": "manage users"}


class Refused(QAError):
    """The request is not allowed, or its input is out of bounds; the message says why."""


class Access:
    """Roles from ``users``; None serves everyone as ``OPEN`` (no sign-in)."""

    def __init__(self, users: Users | None) -> None:
        self.users = users

    @property
    def signs_in(self) -> bool:
        return self.users is not None

    def user(self, request: Any) -> User:
        if self.users is None:
            return OPEN
        user = self.users.get(getattr(request, "username", None))
        if user is None:  # not signed in, or removed since signing in
            raise Refused("请先登录 (sign in first)")
        return user

    def require(self, request: Any, right: str) -> User:
        user = self.user(request)
        if not user.can(right):
            raise Refused(f"{user.name} ({user.role}) may not {WORDS.get(right, right)}")
        return user
