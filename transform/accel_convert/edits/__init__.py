"""Plain-data edits and the one rebuild that applies them."""
