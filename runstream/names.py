"""What a run's file name may be: the one rule the SDK and the query service both apply.

A file name is a relative path with ``/`` between folders, as the service
stores it and as a browser later offers it for download. It is refused when:

* it is empty or longer than :data:`MAX_FILE_NAME_CHARS` characters;
* it holds a character of :data:`HIDDEN_CHARACTERS`: control characters (C0,
  DEL, C1, which break headers and terminals) and the *invisible* ones that
  change how a name reads without showing themselves: bidirectional controls
  (``U+202E`` makes ``invoice_gpj.exe`` read as ``invoice_exe.jpg``),
  zero-width characters (two names that look the same but are not), the byte
  order mark and the other format characters a name has no use for;
* it holds a backslash (a Windows separator: the SDK turns it into ``/``
  before checking; the service, which cannot know what was meant, refuses it);
* it is absolute, or a segment is empty, ``.`` or ``..`` (it would leave the run).

:func:`file_name_problem` says what is wrong (or ``None``); each side words its
own error around it. :data:`HIDDEN_CHARACTERS` is a regular-expression class
body that Python's ``re``, ECMA-262 (the OpenAPI document's patterns) and the
Rust engine that checks them in the fuzz tests read alike: ``\\uXXXX`` escapes
for the basic plane, the characters themselves beyond it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["HIDDEN_CHARACTERS", "MAX_FILE_NAME_CHARS", "file_name_problem", "hidden_character"]

MAX_FILE_NAME_CHARS: Final = 1024

#: Inside ``[...]``: every character a file name may not hold because it is a control or cannot be seen.
HIDDEN_CHARACTERS: Final = (
    r"\x00-\x1f\x7f-\x9f"  # C0 controls, DEL, C1 controls
    r"\u00ad"  # soft hyphen
    r"\u061c"  # Arabic letter mark (bidi)
    r"\u115f\u1160\u3164\uffa0"  # Hangul fillers: letters that draw nothing
    r"\u180e"  # Mongolian vowel separator
    r"\u200b-\u200f"  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    r"\u2028-\u202e"  # line and paragraph separators; bidi embeddings and overrides
    r"\u2060-\u2064"  # word joiner, invisible operators
    r"\u2066-\u206f"  # bidi isolates; deprecated format characters
    r"\ufeff"  # byte order mark (zero-width no-break space)
    r"\ufff9-\ufffb"  # interlinear annotation
    "\U000e0000-\U000e007f"  # tag characters: the characters themselves, as no escape is read alike everywhere
)
_HIDDEN: Final = re.compile(f"[{HIDDEN_CHARACTERS}]")


def hidden_character(text: str) -> str | None:
    """The first control or invisible character in ``text``, as ``U+XXXX``; ``None`` when there is none."""
    found = _HIDDEN.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def file_name_problem(name: str) -> str | None:
    """What makes ``name`` unusable as a run's file name (to follow "file name ..."), or ``None``."""
    if not name:
        return "is empty"
    if len(name) > MAX_FILE_NAME_CHARS:
        return f"is longer than {MAX_FILE_NAME_CHARS} characters"
    hidden = hidden_character(name)
    if hidden is not None:
        return f"contains {hidden}, a control or invisible character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path; it must be a relative path"
    segments = name.split("/")
    if any(s in ("..", ".") for s in segments):
        return "contains a '.' or '..' segment; it must be a relative path within the run"
    if "" in segments:
        return "contains an empty segment"
    return None
