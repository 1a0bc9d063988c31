"""Lifecycle stages and health, computed from the event log."""
