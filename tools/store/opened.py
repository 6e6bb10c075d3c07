"""Opening a model's finished store, with the per-process cache of opened stores."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import StoreError
from .format import store_path
from .reader import ActivationStore
from .status import store_status

if TYPE_CHECKING:
    from ..model import ModelHandle

# opened stores, by (path, units id); a build that replaces a store drops its entries
_OPEN: dict[tuple[str, str], ActivationStore] = {}
_OPEN_LOCK = threading.Lock()


def open_store(handle: ModelHandle, units_id: str = "mlp", verify: bool = False) -> ActivationStore:
    """The finished store of ``handle``'s model for ``units_id``.

    Raises :class:`StoreError` with the build command and a time estimate when there is
    none, and when it is damaged. Opened stores are cached per process.
    """
    path = store_path(handle.name, units_id)
    key = (str(path), units_id)
    with _OPEN_LOCK:
        st = _OPEN.get(key)
        if st is not None:
            try:
                if (path / "meta.json").stat().st_mtime == st._mtime:
                    return st
            except FileNotFoundError:
                pass
            _OPEN.pop(key, None)
        status = store_status(handle, units_id)
        if not status.exists:
            raise StoreError(status.message, f"Build it first: `{status.build_command}` (about {status.estimated_build_seconds:.0f} s here).")
        st = ActivationStore(path, verify=verify, tokenizer=handle.tokenizer)
        if st.config.model != handle.name:
            raise StoreError(f"The store at {path} was built for {st.config.model}, not {handle.name}.", f"Rebuild it: `{status.build_command} --force`.")
        st._mtime = (path / "meta.json").stat().st_mtime
        _OPEN[key] = st
        return st
