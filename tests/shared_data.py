"""Where tests read named sets from: the committed fixture, or the full shared copies when present.

``FIXTURE`` (``tests/data/shared``, made by ``tests/data/make_shared_fixture.py``) holds a
few synthetic rows of every named set in the upstream layouts with its own manifest, so
every reader, check and command runs on a fresh clone.  ``REAL`` is the full copy
(``$STEER_SHARED_DATA`` or ``../shared/data``, as found when the tests start); tests of
the real counts use it and are skipped, with the reason, where it is absent.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from steer.data.locate import project_shared_dir

FIXTURE = Path(__file__).resolve().parent / "data" / "shared"
REAL = Path(os.environ["STEER_SHARED_DATA"]).resolve() if os.environ.get("STEER_SHARED_DATA") else project_shared_dir()
HAVE_REAL = (REAL / "manifest.json").is_file()
needs_real_shared = pytest.mark.skipif(
    not HAVE_REAL, reason=f"the full shared data copies are not present at {REAL} (fixture tests cover the code)"
)


@contextmanager
def fixture_data(cache: Path) -> Iterator[Path]:
    """Named sets read from ``FIXTURE`` (first in the resolution order), fetch cache in ``cache``;
    the environment is restored afterwards.  For module-scoped fixtures, where ``monkeypatch`` is not available."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEER_SHARED_DATA", str(FIXTURE))
        mp.setenv("STEER_CACHE", str(cache))
        yield FIXTURE
