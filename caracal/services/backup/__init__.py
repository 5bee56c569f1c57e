"""Backups: whole-workspace archives, created, verified and restored safely."""
