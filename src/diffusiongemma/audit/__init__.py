"""Batch audits: read logs and red-team results, explain every decision, keep every record in SQLite."""

from .items import AuditItem, Problem
from .readers import detect_format, read_items

__all__ = ["AuditItem", "Problem", "detect_format", "read_items"]
