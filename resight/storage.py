"""Media storage on the local disk that fails cleanly when the disk is full.

Django's FileSystemStorage leaves the part of a file it wrote before the disk filled up (or a quota ran
out): an orphan no row refers to. This storage removes it and raises StorageFull, which every page and API
endpoint answers with 507 and a message that says nothing was stored (resight.http.middleware)."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any

from django.core.files.storage import FileSystemStorage

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StorageFull(OSError):
    """The media storage has no room for this file; nothing of it was kept."""


class MediaStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        try:
            return super()._save(name, content)  # type: ignore[misc]  # django-stubs omit _save
        except OSError as exc:
            if exc.errno not in FULL:
                raise
            # The file was created exclusively (O_EXCL) by this call, so what is there is our partial write.
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(name))
            raise StorageFull(exc.errno, "The media storage is full") from exc
