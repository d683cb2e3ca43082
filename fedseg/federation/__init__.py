"""fedseg.federation."""
