"""From an annotation to ranked candidates with their evidence (see identification/__init__.py)."""
