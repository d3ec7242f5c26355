"""What the plugin asks of Slack's Web API, as one small synchronous interface.

The handling logic runs off the ack path, on the plugin's worker thread, for
both kinds of app. A sync ``App`` gives it the request's ``WebClient``; an
``AsyncApp`` gives it the request's ``AsyncWebClient``, whose calls are run on
the app's event loop (``run_coroutine_threadsafe``) while the worker waits: one
logic, two thin edges.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# The longest the worker waits for one Web API call through the event loop.
ASYNC_CALL_TIMEOUT_SECONDS = 30.0


class SlackUnavailable(Exception):
    """A Web API call failed (an error answer, a network error, a timeout)."""


class SlackPort(Protocol):
    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None: ...

    def post_ephemeral(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None: ...

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    def list_channels(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of public and private channels, and the next page's cursor."""
        ...


class ClientPort:
    """A SlackPort over a client: ``call(method, **kwargs)`` runs one Web API method."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        self._call(
            "chat_postMessage", channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
        )

    def post_ephemeral(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        self._call("chat_postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def list_channels(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        page = self._call(
            "conversations_list",
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=200,
            cursor=cursor,
        )
        try:
            channels = page.get("channels")
            metadata = page.get("response_metadata")
        except Exception as exc:  # an answer that is not what the Web API documents
            raise SlackUnavailable(f"unexpected answer: {exc}") from None
        listed = (
            [channel for channel in channels if isinstance(channel, dict)]
            if isinstance(channels, list)
            else []
        )
        next_cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
        return listed, next_cursor if isinstance(next_cursor, str) and next_cursor else None


def sync_port(client: Any) -> SlackPort:
    """The port of a ``slack_sdk.WebClient``."""

    def call(method: str, **kwargs: Any) -> Any:
        try:
            return getattr(client, method)(**kwargs)
        except Exception as exc:
            raise SlackUnavailable(_describe(exc)) from None

    return ClientPort(call)


def async_port(client: Any, loop: asyncio.AbstractEventLoop | None) -> SlackPort:
    """The port of a ``slack_sdk.web.async_client.AsyncWebClient``, its calls run on
    ``loop`` (the app's running loop); with no loop, each call runs in a loop of its own."""

    def call(method: str, **kwargs: Any) -> Any:
        coroutine: Awaitable[Any] = getattr(client, method)(**kwargs)
        try:
            if loop is None:
                return asyncio.run(_awaited(coroutine))
            future = asyncio.run_coroutine_threadsafe(_awaited(coroutine), loop)
            try:
                return future.result(ASYNC_CALL_TIMEOUT_SECONDS)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise SlackUnavailable("no answer in time") from None
        except SlackUnavailable:
            raise
        except Exception as exc:
            raise SlackUnavailable(_describe(exc)) from None

    return ClientPort(call)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _describe(exc: Exception) -> str:
    lookup = getattr(getattr(exc, "response", None), "get", None)
    error = lookup("error") if callable(lookup) else None
    if error:
        return f"Slack answered {error!r}"
    return " ".join(f"{type(exc).__name__}: {exc}".split())
