"""Analysis helpers for the read-only app (make explore): table access and Altair views."""
