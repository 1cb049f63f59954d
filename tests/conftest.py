"""Shared test setup."""

# Import hypothesis before any test starts threads: its pytest plugin otherwise imports it at
# session end, and CPython 3.11.7 can then fail compiling it ("AST constructor recursion depth
# mismatch") after the mock runtime's threads have run.
import hypothesis  # noqa: F401
