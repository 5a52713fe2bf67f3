"""The student's chat turns and a row's images as OpenAI chat messages, and a reply's text in the answer format.

Pure helpers of the teacher client (``client.py``), without I/O beyond reading an image file.

Images. Each ``<image>`` placeholder in a text turn, and each ``{"type": "image"}`` part of a list turn, takes the
next of the row's images (verl's RL parquet: ``{"bytes": PNG}`` dicts; raw bytes, paths and PIL images work too),
sent as an ``image_url`` part holding a ``data:`` URL. With ``send_images=False`` (a text-only teacher), or for an
image that cannot be encoded, the text ``[image omitted]`` stands in its place; ``<video>`` is always dropped that
way (``[video omitted]``). A turn left with text only is sent as a plain string.

Reasoning. vLLM's reasoning parsers return the thinking apart (``message.reasoning_content``, or ``reasoning`` in
newer vLLM); ``join_reasoning`` puts it back as ``<think>{reasoning}</think>{content}``.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

IMAGE_OMITTED = "[image omitted]"
VIDEO_OMITTED = "[video omitted]"

_PLACEHOLDER = re.compile(r"<image>|<video>")


def _mime_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_to_url(image: Any) -> str | None:
    """A ``data:`` (or http) URL for an image given as bytes, a ``{"bytes"|"path"|"image"|"url"}`` dict, a path,
    a URL string or a PIL image; None when it cannot be encoded."""
    try:
        if isinstance(image, Mapping):
            for key in ("bytes", "image", "url", "image_url", "path"):
                value = image.get(key)
                if isinstance(value, Mapping):  # {"image_url": {"url": ...}}
                    value = value.get("url")
                if value is not None:
                    return image_to_url(value)
            return None
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        elif isinstance(image, str):
            if image.startswith(("data:image/", "http://", "https://")):
                return image
            path = image[len("file://"):] if image.startswith("file://") else image
            if not os.path.isfile(path):
                return None
            with open(path, "rb") as handle:
                data = handle.read()
        elif hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image, without importing PIL
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
        else:
            return None
    except Exception:  # an unreadable file or an image PIL cannot save: dropped, never fatal
        return None
    mime = _mime_of(data)
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_openai_messages(messages: Sequence[Mapping], images: Sequence[Any] = (), *, send_images: bool = True
                       ) -> tuple[list[dict], int, int]:
    """The student's turns as OpenAI chat messages; returns (messages, images sent, images dropped)."""
    pending = list(images) if images is not None else []
    sent = dropped = 0

    def image_part(explicit: Any = None) -> dict:
        nonlocal sent, dropped
        source = explicit if explicit is not None else (pending.pop(0) if pending else None)
        url = image_to_url(source) if (send_images and source is not None) else None
        if url is None:
            dropped += 1
            return {"type": "text", "text": IMAGE_OMITTED}
        sent += 1
        return {"type": "image_url", "image_url": {"url": url}}

    out = []
    for message in messages:
        content = message.get("content")
        parts: list[dict] = []
        if isinstance(content, str):
            pos = 0
            for match in _PLACEHOLDER.finditer(content):
                if match.start() > pos:
                    parts.append({"type": "text", "text": content[pos:match.start()]})
                if match.group() == "<image>":
                    parts.append(image_part())
                else:
                    dropped += 1
                    parts.append({"type": "text", "text": VIDEO_OMITTED})
                pos = match.end()
            if pos < len(content):
                parts.append({"type": "text", "text": content[pos:]})
        elif content is not None and not isinstance(content, (bytes, Mapping)) and hasattr(content, "__iter__"):
            for part in content:  # a list of parts (or a NumPy array of them, from a parquet row)
                if isinstance(part, str):
                    parts.append({"type": "text", "text": part})
                    continue
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind == "text" or (kind is None and isinstance(part, Mapping) and "text" in part):
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url" and send_images:
                    sent += 1
                    parts.append(dict(part))
                elif kind in ("image", "image_url") or (isinstance(part, Mapping) and "image" in part):
                    explicit = part.get("image") if kind != "image_url" else part.get("image_url")
                    parts.append(image_part(explicit))  # no data in the part: the next of ``images``
                else:  # video and anything else: dropped, said in the text
                    dropped += 1
                    parts.append({"type": "text", "text": VIDEO_OMITTED if "video" in str(kind) else IMAGE_OMITTED})
        elif content is not None:
            parts.append({"type": "text", "text": str(content)})
        new = {"role": str(message.get("role", "user"))}
        if isinstance(message.get("name"), str):
            new["name"] = message["name"]
        if all(p["type"] == "text" for p in parts):
            new["content"] = "".join(p["text"] for p in parts)
        else:
            merged: list[dict] = []  # adjacent text parts joined
            for p in parts:
                if p["type"] == "text" and merged and merged[-1]["type"] == "text":
                    merged[-1] = {"type": "text", "text": merged[-1]["text"] + p["text"]}
                else:
                    merged.append(p)
            new["content"] = merged
        out.append(new)
    dropped += len(pending)  # images with no placeholder to go to
    return out, sent, dropped


def join_reasoning(message: Mapping) -> str:
    """``<think>{reasoning}</think>{content}`` when the server split the thinking out, else the content."""
    content = message.get("content") or ""
    if not isinstance(content, str):  # a list of parts (unusual in a reply)
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning and not content.lstrip().startswith("<think>"):
        return f"<think>{reasoning}</think>{content}"
    return content
