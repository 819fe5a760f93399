"""Placeholder until the browser chat lands (issue 3)."""
