"""System prompt layers (data files per language) and their assembly. Knows nothing of actors."""
