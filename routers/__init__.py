"""darsbench routers: the protocol in :mod:`routers.base`, one module per router, and
:func:`load` for a saved router bundle (:mod:`routers.bundle`). See docs/routers.md."""

from routers.bundle import RouterBundle, load, load_bundle, save_bundle

__all__ = ["RouterBundle", "load", "load_bundle", "save_bundle"]
