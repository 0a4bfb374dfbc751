"""Context forensics: which document, tool result or earlier turn drove a reply (``explain-context``)."""

from .forensics import context_chat, explain_context, follows_reply, restoring_set

__all__ = ["explain_context", "context_chat", "follows_reply", "restoring_set"]
