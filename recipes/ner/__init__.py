"""Recipe: many-to-many named-entity tagging with entity-level F1 (see README.md)."""
