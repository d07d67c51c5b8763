import secrets
import time
from datetime import date

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.sql import JoinedSelect, Part
from stores.errors import InvalidClosingDate, StoreAlreadyClosed, StoreNotFound, TerminalNameTaken
from stores.models import Format, Store, Terminal, hash_api_key

KEY_PREFIX = "pos_"


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def terminal_create(*, store_code: str, name: str) -> tuple[Terminal, str]:
    """Create a POS terminal; return it with its API key, which is never stored or shown again.

    Raise StoreNotFound, StoreAlreadyClosed, TerminalNameTaken.
    """
    store = Store.objects.filter(code=store_code).first()
    if store is None:
        raise StoreNotFound(code=store_code)
    if store.status == Store.Status.CLOSED:
        raise StoreAlreadyClosed(code=store.code)
    key = _new_key()
    try:
        with transaction.atomic():
            terminal = Terminal.objects.create(
                store=store, name=name, key_prefix=key[: len(KEY_PREFIX) + 4], key_hash=hash_api_key(key)
            )
    except IntegrityError:
        raise TerminalNameTaken(store=store.code, name=name) from None
    return terminal, key


@transaction.atomic
def terminal_key_rotate(*, terminal: Terminal) -> str:
    """Give a terminal a new API key; the old one stops working at once."""
    key = _new_key()
    terminal.key_prefix = key[: len(KEY_PREFIX) + 4]
    terminal.key_hash = hash_api_key(key)
    terminal.save(update_fields=["key_prefix", "key_hash"])
    return key


# On every POS request: one unique-index probe with the store and its format, written once per process.
_TERMINAL_BY_KEY = JoinedSelect(
    [Part("t", Terminal), Part("s", Store, via="t.store"), Part("f", Format, via="s.format")],
    'FROM {t} t JOIN {s} s ON s."id" = t."store_id" JOIN {f} f ON f."id" = s."format_id" '
    'WHERE t."key_hash" = %s AND t."is_active" = %s',
)


# Every POS request proves its terminal by its key. The terminals found are kept per process for
# TERMINAL_KEY_CACHE_SECONDS, by the key's hash: a change saved in this process (a key rotated, a terminal
# switched off, its store closed) empties the cache at once (stores.apps connects terminal_keys_forget), and
# another process sees it when its entry runs out. Unknown keys are never kept.
_TERMINALS_BY_KEY: dict[str, tuple[Terminal, float]] = {}
_TERMINALS_KEPT_MAX = 100_000


def terminal_for_key(key: str) -> Terminal | None:
    """The active terminal of an open store that this key belongs to, with its store and format loaded."""
    key_hash = hash_api_key(key)
    seconds = settings.TERMINAL_KEY_CACHE_SECONDS
    if seconds > 0:
        kept = _TERMINALS_BY_KEY.get(key_hash)
        if kept is not None and kept[1] > time.monotonic():
            return kept[0]
    found = _TERMINAL_BY_KEY.fetch([key_hash, True])
    if found is None:
        return None
    terminal = found["t"]
    if terminal.store.status == Store.Status.CLOSED:
        return None
    if seconds > 0:
        if len(_TERMINALS_BY_KEY) >= _TERMINALS_KEPT_MAX:
            _TERMINALS_BY_KEY.clear()
        _TERMINALS_BY_KEY[key_hash] = (terminal, time.monotonic() + seconds)
    return terminal


def terminal_keys_forget(**_signal) -> None:
    """Forget every terminal this process keeps by key (a terminal, store or format was saved or deleted)."""
    _TERMINALS_BY_KEY.clear()


def terminal_touch(*, terminal: Terminal, interval_seconds: int) -> None:
    """Record that a terminal was used, at most once per interval (no write on every request)."""
    now = timezone.now()
    if terminal.last_used_at and (now - terminal.last_used_at).total_seconds() < interval_seconds:
        return
    Terminal.objects.filter(pk=terminal.pk).update(last_used_at=now)
    terminal.last_used_at = now


def store_close_check(*, store: Store, closed_on: date) -> None:
    """Whether a store may close on that day. Raise StoreAlreadyClosed, InvalidClosingDate."""
    if store.status == Store.Status.CLOSED:
        raise StoreAlreadyClosed(code=store.code)
    if store.opened_on and closed_on < store.opened_on:
        raise InvalidClosingDate(opened_on=store.opened_on.isoformat())


@transaction.atomic
def store_close(*, store_id: int, closed_on: date, cause: str) -> Store:
    """Close a store and stop its terminals; `cause` names why in their history ("approval #12").

    Closing goes through a second person's approval (approvals/store_closing.py), which calls this once the
    request is approved, in the approval's transaction. Raise StoreAlreadyClosed, InvalidClosingDate.
    """
    store = Store.objects.select_for_update().get(pk=store_id)
    store_close_check(store=store, closed_on=closed_on)
    store.status = Store.Status.CLOSED
    store.closed_on = closed_on
    store._change_reason = cause
    store.save(update_fields=["status", "closed_on", "updated_at"])
    # A closed store takes no more POS traffic.
    for terminal in store.terminals.filter(is_active=True):
        terminal.is_active = False
        terminal._change_reason = gettext("store closed, %(cause)s") % {"cause": cause}
        terminal.save(update_fields=["is_active"])
    return store
