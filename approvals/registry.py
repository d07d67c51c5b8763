"""Actions that may need a second person's approval.

An app registers each action once (at import of its services module) with the
function that carries it out; `approval_request_approve` calls that function
in the same transaction that marks the request approved.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ApprovalAction:
    name: str
    label: str
    execute: Callable
    on_reject: Callable | None = None


_actions: dict[str, ApprovalAction] = {}


def register(name: str, *, label, execute: Callable, on_reject: Callable | None = None) -> ApprovalAction:
    if name in _actions and _actions[name].execute is not execute:
        raise ValueError(f"approval action {name!r} is registered twice")
    action = ApprovalAction(name=name, label=label, execute=execute, on_reject=on_reject)
    _actions[name] = action
    return action


def unregister(name: str) -> None:
    """Forget an action (tests that register one of their own take it away again)."""
    _actions.pop(name, None)


def get(name: str) -> ApprovalAction:
    return _actions[name]


def choices() -> list[tuple[str, str]]:
    return sorted(((action.name, action.label) for action in _actions.values()), key=lambda item: item[0])


def label(name: str) -> str:
    action = _actions.get(name)
    return action.label if action else name
