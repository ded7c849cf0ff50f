"""Encoder-decoder translation with attention, beam search and BLEU (see README.md)."""
