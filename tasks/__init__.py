"""residual-suite task plugins and the shared engine."""
