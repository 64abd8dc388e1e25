"""Old name of ``stuck.runtime.livereport``, kept so code importing it keeps working.

``stuck.runtime.snapshot`` is also the public function ``stuck.runtime.snapshot()``; importing a
submodule of that name replaces the package attribute, so this module is made callable and does
what the function does. New code imports ``stuck.runtime.livereport``.
"""

from __future__ import annotations

import sys
import types

from stuck.model import Report
from stuck.runtime.livereport import describe, finding_for, report_for, take, thread_id

__all__ = ["describe", "finding_for", "report_for", "take", "thread_id"]


class _CallableModule(types.ModuleType):
    def __call__(self) -> Report:
        from stuck.runtime import policy

        return report_for(None, policy.settings.policy)


sys.modules[__name__].__class__ = _CallableModule
