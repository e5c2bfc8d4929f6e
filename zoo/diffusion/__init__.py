"""Diffusion models: the base class (base.py), schedules and the forward process
(schedules.py), the network (denoiser.py), and one module per registered model."""
