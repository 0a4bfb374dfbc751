"""Reports: HTML pages (Jinja2, self-contained) and terminal tables (rich)."""
