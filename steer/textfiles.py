"""Data files are UTF-8 text: check that up front, and say where a file is not.

A non-UTF-8 byte deep in a JSONL/CSV/TXT file would otherwise surface as a
``UnicodeDecodeError`` traceback from whichever reader met it first (after the model
loaded). :func:`check_utf8_files` reads each text input once, streaming, and names the
file and the byte offset of the first bad byte.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Iterable

from steer.errors import SteerInputError

#: suffixes of the text formats steer reads (data sets, prompt lists, caption corpora)
TEXT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")
#: prompt files inside an image folder (see :func:`calibration.load_anchors`)
FOLDER_PROMPT_FILES = ("prompts.txt", "prompt.txt")


def check_utf8(path: str | os.PathLike) -> None:
    """Refuse ``path`` unless its bytes decode as UTF-8 (a leading BOM is fine)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                bad = block[err.start : err.start + 1]
                raise SteerInputError(
                    f"{path} is not UTF-8 text: byte offset {offset + err.start} (0x{bad.hex()}) cannot be decoded; "
                    "save the file as UTF-8"
                ) from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SteerInputError(f"{path} is not UTF-8 text: it ends inside a character; save the file as UTF-8") from None


def check_utf8_files(paths: Iterable[str | os.PathLike]) -> None:
    """:func:`check_utf8` on every text file among ``paths`` (and an image folder's prompts file)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = [path / name for name in FOLDER_PROMPT_FILES]
        else:
            candidates = [path]
        for candidate in candidates:
            if candidate.is_file() and candidate.suffix.lower() in TEXT_SUFFIXES:
                check_utf8(candidate)


def check_text_inputs(*specs: str | os.PathLike | None) -> None:
    """:func:`check_utf8_files` on the files named by command-line input specs (lists, ``@MODE``, set names)."""
    from steer.atomic import existing_paths

    check_utf8_files(existing_paths(*specs))
