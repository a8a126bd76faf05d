"""Profiling an export for `leadq init`: sniffers (sniff.py) and the role guesses (profile.py)."""
