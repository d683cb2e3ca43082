"""fedseg.train."""
