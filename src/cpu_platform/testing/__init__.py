"""Test helpers shared by the workspace (pytest plugins and fixtures)."""
