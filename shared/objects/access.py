"""Who may read, list, cancel or delete an owned object: its owner, a manager of the model it was made
through (directly or on its workspace), or an admin. Everyone else is told it does not exist."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..access import Policy
    from .store import Owned


def may_use(owned: Owned, principals: Iterable[str], policy: Policy) -> bool:
    principals = frozenset(principals)
    if owned.owner in principals:
        return True
    if owned.model is not None:
        return policy.allows(principals, f"model:{owned.model}", "manager")
    return policy.decide(principals, "gateway:default").role == "admin"
