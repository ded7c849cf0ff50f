"""Character (or word) language model: train, sample, score, evaluate."""
