"""Message text as Telegram sees it: ``parse_mode`` rendering, validation and the length limit.

Telegram strips the markup of HTML / MarkdownV2 text before storing it (the formatting travels as
``entities``), counts the 4096-character limit on the rendered text, and rejects malformed markup with
``400 Bad Request: can't parse entities: ...``.  A bot that forgets to escape a ``.`` in MarkdownV2 is a
classic production bug, so the emulator rejects it the same way instead of silently accepting it.

This is a deliberately small subset: the rendered text is right for ordinary markup; ``entities`` are
not produced.
"""

from __future__ import annotations

from html.parser import HTMLParser

from sandbox.telegram.state import TelegramApiError

MAX_MESSAGE_LENGTH = 4096

_HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji",
     "code", "pre", "blockquote"}
)
# MarkdownV2: characters that must be escaped with a backslash wherever they are not markup.
_MDV2_RESERVED = frozenset(">#+-={}.!")
_MDV2_MARKERS = ("||", "__", "*", "_", "~")


def render(text: str, parse_mode: str | None) -> str:
    """The plain text Telegram stores for ``text`` sent with ``parse_mode`` (raises 400 on bad markup)."""
    if not parse_mode:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return _render_html(text)
    if mode == "markdownv2":
        return _render_markdown_v2(text)
    if mode == "markdown":
        return _render_markdown_legacy(text)
    raise TelegramApiError(400, "Bad Request: unsupported parse_mode")


def check_length(rendered: str) -> None:
    """Telegram's limit, counted (like TDLib's ``utf8_length``) in code points of the rendered text."""
    if not rendered.strip():
        raise TelegramApiError(400, "Bad Request: message text is empty")
    if len(rendered) > MAX_MESSAGE_LENGTH:
        raise TelegramApiError(400, "Bad Request: message is too long")


class _HtmlRenderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {self._offset()}')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise _entities_error(f'Unmatched end tag at byte offset {self._offset()}, expected "</'
                                  f'{self.open[-1] if self.open else ""}>", found "</{tag}>"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def _offset(self) -> int:
        return self.getpos()[1]


def _render_html(text: str) -> str:
    parser = _HtmlRenderer()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.parts)  # character references were already decoded by the parser


def _render_markdown_v2(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    link_depth = 0  # inside [link text]
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise _entities_error("Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "`":
            # ``` blocks and ` spans: the contents are literal.
            fence = "```" if text.startswith("```", i) else "`"
            end = text.find(fence, i + len(fence))
            if end < 0:
                raise _entities_error(f"Can't find end of Pre entity at byte offset {i}" if fence == "```"
                                      else f"Can't find end of Code entity at byte offset {i}")
            body = text[i + len(fence):end]
            if fence == "```" and "\n" in body:
                first, _, rest = body.partition("\n")
                body = rest if first and " " not in first.strip() else body
            out.append(body.replace("\\`", "`").replace("\\\\", "\\"))
            i = end + len(fence)
            continue
        if ch == "[":
            link_depth += 1
            i += 1
            continue
        if ch == "]" and link_depth:
            link_depth -= 1
            if text.startswith("(", i + 1):
                end = text.find(")", i + 2)
                if end < 0:
                    raise _entities_error(f"Can't find end of a URL at byte offset {i + 1}")
                i = end + 1
            else:
                i += 1
            continue
        if (ch == ">" and (i == 0 or text[i - 1] == "\n")) or (ch == "!" and text.startswith("[", i + 1)):
            i += 1  # a blockquote line / a custom emoji ![..](tg://emoji?id=..)
            continue
        marker = next((m for m in _MDV2_MARKERS if text.startswith(m, i)), None)
        if marker:
            i += len(marker)
            continue
        if ch in _MDV2_RESERVED or ch in "()[]":
            raise _entities_error(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        out.append(ch)
        i += 1
    if link_depth:
        raise _entities_error("Can't find end of the entity")
    return "".join(out)


def _render_markdown_legacy(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch in "*_`":
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _entities_error(detail: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: can't parse entities: {detail}")
