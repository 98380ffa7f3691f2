"""Detectors: units in, findings out. Knowledge lives in patterns/, mechanisms here."""
