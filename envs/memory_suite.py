"""Registers the memory and timer tasks with Gymnasium."""

MEMORY: list[str] = []
