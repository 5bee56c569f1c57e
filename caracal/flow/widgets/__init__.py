"""Flow's own widgets."""
