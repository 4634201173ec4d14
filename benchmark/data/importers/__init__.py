"""Importers of other routing data sets into the DARS schema, and exporters out of it.

Every importer writes through :func:`benchmark.data.dars_format.write_dars_jsonl`. The command
line is ``darsbench-convert`` (benchmark/app/convert.py); reference: docs/convert.md.
"""
