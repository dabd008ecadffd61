"""Adapters: tables, repositories and external lookups."""
