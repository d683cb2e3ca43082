"""fedseg.metrics."""
