"""Harden a model: attack its refusal, find how each attack works, patch the refusal, verify again."""
