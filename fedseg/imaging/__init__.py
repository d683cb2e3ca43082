"""fedseg.imaging."""
