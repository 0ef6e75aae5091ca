"""Python SDK for a promptvault server (standard library only).

``Client.get`` answers from memory, kept fresh by the server's event stream
(``GET /v1/events``): a promote or rollback reaches the cache within
milliseconds, with no TTL. While the stream is down cached prompts are still
served at once and revalidated in the background; when the server fails the
last good copy is served; with ``snapshot_path`` the cache survives restarts,
so an application can start while the server is down. ``Client.render``
renders on the server.
"""

from ._client import Client
from ._types import (
    ATTR_PROMPT_COMMIT,
    ATTR_PROMPT_ENV,
    ATTR_PROMPT_NAME,
    ATTR_PROMPT_SHA256,
    ATTR_PROMPT_VERSION,
    Message,
    Prompt,
    PromptBody,
    PromptVaultError,
    Rendered,
    VariableError,
)

__all__ = [
    "Client",
    "Prompt",
    "PromptBody",
    "Message",
    "Rendered",
    "PromptVaultError",
    "VariableError",
    "ATTR_PROMPT_NAME",
    "ATTR_PROMPT_VERSION",
    "ATTR_PROMPT_COMMIT",
    "ATTR_PROMPT_SHA256",
    "ATTR_PROMPT_ENV",
]
