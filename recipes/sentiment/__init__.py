"""Recipe: bidirectional many-to-one text classification (see README.md)."""
