"""Action recognition from video clips: CNN + RNN and ConvLSTM (see README.md)."""
