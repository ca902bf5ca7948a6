"""Apps served to users (make explore)."""
