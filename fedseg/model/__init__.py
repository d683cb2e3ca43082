"""fedseg.model."""
