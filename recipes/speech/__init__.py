"""Speech recognition: recorded audio to text with a recurrent CTC model."""
