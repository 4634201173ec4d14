"""Data layer: the DARS schema, its one reader/writer, the loader, cache and simulator (docs/data.md)."""
