"""fedseg.workflow."""
