"""Single-image super-resolution (x2, x3, x4) with residual bodies from the registry."""
