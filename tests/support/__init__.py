"""Helpers shared by test suites (data loaders, fakes)."""
