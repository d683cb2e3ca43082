"""fedseg.synth."""
