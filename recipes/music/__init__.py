"""Melody generation: a recurrent language model over folk tunes in ABC notation."""
