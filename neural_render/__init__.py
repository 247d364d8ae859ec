"""neural_render."""
