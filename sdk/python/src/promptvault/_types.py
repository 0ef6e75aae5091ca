"""The documents the server answers (SPEC §3), as frozen dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

# Trace attribute names. The first two are OpenTelemetry's GenAI semantic
# conventions (gen_ai.prompt.name and gen_ai.prompt.version, conditionally
# required on an inference span that used a named prompt template); the
# conventions have no name for the commit or the content hash, so those take
# the vendor namespace OpenTelemetry asks for, promptvault.*. The Go and
# TypeScript SDKs use the same names.
ATTR_PROMPT_NAME = "gen_ai.prompt.name"
ATTR_PROMPT_VERSION = "gen_ai.prompt.version"
ATTR_PROMPT_COMMIT = "promptvault.prompt.commit"
ATTR_PROMPT_SHA256 = "promptvault.prompt.sha256"
ATTR_PROMPT_ENV = "promptvault.prompt.env"

# SPEC §1's key: lower-case path segments that start with a letter or digit.
_KEY = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
_MAX_KEY_LEN = 128


@dataclass(frozen=True)
class VariableError:
    """One problem with a render's variables, at a JSON pointer into them."""

    path: str
    message: str


class PromptVaultError(Exception):
    """An error answer from the server, or (status 0) one the client raised
    itself: code ``unavailable`` when the server could not be reached or its
    answer not read, ``invalid_key`` for a key that breaks SPEC §1's pattern
    (checked before any request), ``bad_response`` for an answer that is not
    the documented JSON."""

    def __init__(self, status: int, code: str, message: str, errors: Optional[List[VariableError]] = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.errors: List[VariableError] = list(errors or [])
        if status:
            super().__init__(f"promptvault: {status} {code}: {message}")
        else:
            super().__init__(f"promptvault: {code}: {message}")


def check_key(key: str) -> None:
    if not isinstance(key, str) or len(key) > _MAX_KEY_LEN or not _KEY.fullmatch(key):
        raise PromptVaultError(
            0, "invalid_key", f"invalid prompt key {key!r}: want lower-case path segments such as support/summarize"
        )


@dataclass(frozen=True)
class Message:
    role: str
    content: str


def _messages(v: Any) -> List[Message]:
    if not isinstance(v, list):
        return []
    return [Message(str(m.get("role", "")), str(m.get("content", ""))) for m in v if isinstance(m, dict)]


def _opt_dict(v: Any) -> Optional[Dict[str, Any]]:
    return v if isinstance(v, dict) else None


@dataclass(frozen=True)
class PromptBody:
    """The prompt file's content (SPEC §1)."""

    description: str = ""
    model: str = ""
    fallback_model: str = ""
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    top_p: Optional[float] = None
    system: str = ""
    template: str = ""
    messages: List[Message] = field(default_factory=list)
    input_schema: Optional[Dict[str, Any]] = None
    output_schema: Optional[Dict[str, Any]] = None
    cache_timeout: Optional[int] = None
    config: Optional[Dict[str, Any]] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PromptBody":
        return cls(
            description=str(d.get("description") or ""),
            model=str(d.get("model") or ""),
            fallback_model=str(d.get("fallback_model") or ""),
            temperature=d.get("temperature"),
            max_tokens=d.get("max_tokens"),
            top_p=d.get("top_p"),
            system=str(d.get("system") or ""),
            template=str(d.get("template") or ""),
            messages=_messages(d.get("messages")),
            input_schema=_opt_dict(d.get("input_schema")),
            output_schema=_opt_dict(d.get("output_schema")),
            cache_timeout=d.get("cache_timeout"),
            config=_opt_dict(d.get("config")),
        )


@dataclass(frozen=True)
class Prompt:
    """A resolved prompt: ``GET /v1/prompts/{key}``'s answer."""

    key: str
    env: str  # "live" or "staging": the pointer that served it
    version: str  # "v7", or a draft's label on staging
    number: Optional[int]  # None for drafts
    commit: str
    sha256: str
    message: str
    author: str
    created_at: str
    prompt: PromptBody
    etag: str = ""  # the server's entity tag for this document

    @classmethod
    def from_json(cls, d: Any, etag: str = "") -> "Prompt":
        if not isinstance(d, dict) or not isinstance(d.get("key"), str) or not d["key"]:
            raise ValueError("not a prompt document")
        body = d.get("prompt")
        return cls(
            key=d["key"],
            env=str(d.get("env") or ""),
            version=str(d.get("version") or ""),
            number=d.get("number") if isinstance(d.get("number"), int) else None,
            commit=str(d.get("commit") or ""),
            sha256=str(d.get("sha256") or ""),
            message=str(d.get("message") or ""),
            author=str(d.get("author") or ""),
            created_at=str(d.get("created_at") or ""),
            prompt=PromptBody.from_json(body if isinstance(body, dict) else {}),
            etag=etag,
        )

    def trace_attributes(self) -> Dict[str, str]:
        """The attributes to put on the LLM span that used this prompt, so a
        generation can be traced to the exact prompt file::

            span.set_attributes(prompt.trace_attributes())
        """
        return {
            ATTR_PROMPT_NAME: self.key,
            ATTR_PROMPT_VERSION: self.version,
            ATTR_PROMPT_COMMIT: self.commit,
            ATTR_PROMPT_SHA256: self.sha256,
            ATTR_PROMPT_ENV: self.env,
        }


@dataclass(frozen=True)
class Rendered:
    """``POST /v1/prompts/{key}/render``'s answer."""

    key: str
    env: str
    version: str
    messages: List[Message]
    model: Optional[str] = None
    fallback_model: Optional[str] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    top_p: Optional[float] = None
    output_schema: Optional[Dict[str, Any]] = None
    cache_timeout: Optional[int] = None
    config: Optional[Dict[str, Any]] = None

    @classmethod
    def from_json(cls, d: Any) -> "Rendered":
        if not isinstance(d, dict) or not isinstance(d.get("messages"), list):
            raise ValueError("not a render answer")
        return cls(
            key=str(d.get("key") or ""),
            env=str(d.get("env") or ""),
            version=str(d.get("version") or ""),
            messages=_messages(d.get("messages")),
            model=d.get("model"),
            fallback_model=d.get("fallback_model"),
            temperature=d.get("temperature"),
            max_tokens=d.get("max_tokens"),
            top_p=d.get("top_p"),
            output_schema=_opt_dict(d.get("output_schema")),
            cache_timeout=d.get("cache_timeout"),
            config=_opt_dict(d.get("config")),
        )
