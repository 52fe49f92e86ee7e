"""JSON / Markdown / HTML reports."""
