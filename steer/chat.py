"""Chat messages as prompts: the ``[{"role": ..., "content": ...}, ...]`` lists HF chat templates take.

Wherever `steer` takes a prompt it takes either a plain string (formatted as one user turn)
or a conversation: a list of ``{"role", "content"}`` dicts, a system prompt and earlier
turns included. ``content`` is a string or a list of parts as HF processors expect:
``{"type": "text", "text": ...}`` and ``{"type": "image"}``; an image part may carry its
picture under ``"image"`` (a path or PIL image), ``"path"`` or ``"url"`` (a local path).

One conversation holds at most one image: the steering positions (``after_image``,
``prompt``, ...) and the calibrated shifts are defined relative to one image per row.
The picture can also be given separately (``generate(messages, image=...)``); then the
conversation either has a bare ``{"type": "image"}`` part marking where it goes, or none,
and it goes before the text of the last user turn, as for a plain prompt.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

from steer.errors import SteerInputError

#: a plain prompt or a chat conversation
Prompt = Union[str, Sequence[Mapping[str, Any]]]

_IMAGE_KEYS = ("image", "path", "url")


def is_conversation(obj: Any) -> bool:
    """True for a list of ``{"role", "content"}`` dicts (one conversation), False otherwise."""
    return (
        isinstance(obj, (list, tuple))
        and len(obj) > 0
        and all(isinstance(m, Mapping) for m in obj)
        and any("role" in m for m in obj)
    )


def check_conversation(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A validated copy (parts copied too, so callers may edit it); errors name the bad turn."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise SteerInputError(f"chat message {i} has no 'role' (give e.g. {{'role': 'user', 'content': '...'}})")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, (list, tuple)):
            raise SteerInputError(
                f"chat message {i} ({role}): 'content' must be a string or a list of parts, got {type(content).__name__}"
            )
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind not in ("text", "image"):
                raise SteerInputError(
                    f"chat message {i} ({role}): parts must be {{'type': 'text', 'text': ...}} or {{'type': 'image'}}, got {part!r}"
                )
            if kind == "text" and not isinstance(part.get("text"), str):
                raise SteerInputError(f"chat message {i} ({role}): a text part needs a 'text' string")
            parts.append(dict(part))
        out.append({"role": role, "content": parts})
    if not out:
        raise SteerInputError("an empty conversation: give at least one user message")
    return out


def split_image(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Any, bool]:
    """(messages with bare image parts, the embedded picture or None, whether an image part exists).

    Refuses a conversation with more than one image part (see the module docstring).
    """
    clean = check_conversation(messages)
    found: list[Any] = []
    for message in clean:
        if isinstance(message["content"], list):
            for n, part in enumerate(message["content"]):
                if part["type"] == "image":
                    found.append(next((part[k] for k in _IMAGE_KEYS if part.get(k) is not None), None))
                    message["content"][n] = {"type": "image"}
    if len(found) > 1:
        raise SteerInputError(
            f"a conversation holds {len(found)} images; steer steers relative to one image per prompt: keep one"
        )
    return clean, (found[0] if found else None), bool(found)


def for_template(messages: Sequence[Mapping[str, Any]], *, with_image: bool, parts: bool) -> list[dict[str, Any]]:
    """The conversation as a chat template expects it.

    ``parts=True`` (VLM processors): every content a list of parts; with ``with_image`` and no
    image part yet, ``{"type": "image"}`` goes first in the last user turn. ``parts=False``
    (text-only tokenizers, whose templates take strings): text parts joined. Without
    ``with_image`` image parts are dropped: the caller decided this row has no picture.
    """
    clean, _, present = split_image(messages)
    if present and not with_image:  # this row is told to go without its picture (e.g. a text-only view)
        for m in clean:
            if isinstance(m["content"], list):
                m["content"] = [p for p in m["content"] if p["type"] != "image"]
        present = False
    if not parts:
        return [
            {"role": m["role"], "content": m["content"] if isinstance(m["content"], str)
             else "".join(p.get("text", "") for p in m["content"])}
            for m in clean
        ]
    out = [
        {"role": m["role"], "content": [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else m["content"]}
        for m in clean
    ]
    if with_image and not present:
        users = [i for i, m in enumerate(out) if m["role"] == "user"]
        if not users:
            raise SteerInputError("an image needs a user turn to go in: add a {'role': 'user', ...} message")
        out[users[-1]]["content"] = [{"type": "image"}] + out[users[-1]]["content"]
    return out


def sole_user_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The text of a one-user-turn conversation (for processors without a chat template), else None."""
    clean = check_conversation(messages)
    if len(clean) != 1 or clean[0]["role"] != "user":
        return None
    content = clean[0]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")
