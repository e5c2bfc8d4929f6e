"""Energy-based models: contrastive divergence with Langevin samples (EBM), JEM, NCSN."""
