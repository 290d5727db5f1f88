"""The application layer: what the commands share (issue 17 moves the commands here step by step)."""
