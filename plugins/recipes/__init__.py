"""Built-in training recipes."""
