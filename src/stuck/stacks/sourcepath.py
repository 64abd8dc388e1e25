"""Where a source file a stack names can be read: at the path the stack prints, or under a
directory the user gives (``--source DIR``) when the program was built or run elsewhere.

One lookup for every language whose source a rule reads (Python's ``with`` blocks, Go's
function literals), so ``--source`` means the same for each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def candidates(path: str, dirs: Iterable[str] = (), cwd: str | None = None) -> list[str]:
    """The files to try for ``path``, in order: the path as printed (a relative one from the
    program's working directory ``cwd`` when known), then under each of ``dirs`` the path's
    longest suffix first (``/build/app/pkg/m.go`` under DIR: ``DIR/build/app/pkg/m.go``, …,
    ``DIR/pkg/m.go``, ``DIR/m.go``)."""
    out = [os.path.join(cwd, path) if cwd else path]
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    for d in dirs:
        if d:
            out.extend(os.path.join(d, *parts[i:]) for i in range(len(parts)))
    return out
