"""fedseg.federation.strategies."""
