"""Factories for tests."""

__all__: list[str] = []
