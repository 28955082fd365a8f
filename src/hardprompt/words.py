"""English words: the word list behind `--words-only` and every result's `readability`.

The list is a maintained one, not written here: Debian's `wamerican` (SCOWL, /usr/share/dict),
installed by scripts/install.sh, or any file of one word per line named by HARDPROMPT_WORDS.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from .errors import HardpromptError

WORD_LISTS = ("/usr/share/dict/american-english", "/usr/share/dict/words")
_WORD = re.compile(r"[a-z]+")


@cache
def english_words() -> frozenset[str] | None:
    """The lower-case alphabetic words of the word list (single letters only "a" and "i"), or None without a list."""
    candidates = [os.environ["HARDPROMPT_WORDS"]] if os.environ.get("HARDPROMPT_WORDS") else WORD_LISTS
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            words = (word for word in text.lower().split() if _WORD.fullmatch(word))
            return frozenset(word for word in words if len(word) > 1 or word in ("a", "i"))
    return None


def require_english_words() -> frozenset[str]:
    """The word list, or a one-line error saying how to install one."""
    words = english_words()
    if not words:
        raise HardpromptError(
            "--words-only needs an English word list: apt-get install wamerican, or set HARDPROMPT_WORDS=FILE"
        )
    return words


def readability(text: str) -> float | None:
    """The share of the words of `text` (runs of letters) found in the word list; None without a list.

    A prompt of no words at all scores 0.
    """
    words = english_words()
    if words is None:
        return None
    found = _WORD.findall(text.lower())
    return sum(word in words for word in found) / len(found) if found else 0.0
