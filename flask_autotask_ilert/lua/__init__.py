"""Lua scripts that change the store atomically (loaded by store.py)."""
