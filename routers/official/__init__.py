"""The paper's reference-code router recipes, beside darsbench's own (issue 15; docs/official.md)."""
