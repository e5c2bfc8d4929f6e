"""General networks any family may use: MLPs, ResNet blocks, MADE, the
time-conditioned MLP, zero-initialised convolutions, and the random stream of a
training step."""
