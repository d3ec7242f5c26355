"""What the plugin and the host bot ask of Slack: events, Web API methods, scopes.

``manifest.yaml`` must grant exactly this; tests hold both to what the running
app really calls.
"""

from __future__ import annotations

# Bot event subscription -> the scope it needs.
EVENT_SCOPES: dict[str, str] = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
}

# Web API method -> the scopes it needs (for conversations.list: public and
# private channels, since the admin channel may be either).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.update": ("chat:write",),
    "conversations.list": ("channels:read", "groups:read"),
}

INTERACTIVITY = ("block_actions",)
