"""Domain core: pure Python models and rules. No UI, no adapters (a test enforces it)."""
