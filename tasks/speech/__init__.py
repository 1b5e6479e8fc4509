"""Speech recognition: a residual 1-D acoustic model (QuartzNet style) trained with CTC."""
