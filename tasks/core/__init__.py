"""The shared engine: config, device, distributed, loop, checkpoints, logging."""
