"""Learning a dynamical system from trajectories: residual (Euler), plain and Neural ODE models."""
