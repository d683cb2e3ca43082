"""fedseg.cli."""
