"""The decision stage: what one conversion does, computed once and read by every rule."""
