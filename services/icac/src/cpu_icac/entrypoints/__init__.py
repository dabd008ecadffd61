"""Thin entrypoints: HTTP routers, stream subscribers, CLI."""
