"""Container images the sandbox can run: a table of references and what they start."""
