"""Admin screens (filled in by the module's owner)."""
