"""fedseg.inference."""
