"""Deep Q-learning on gymnasium environments with a residual (or plain) Q-network."""
