"""Training: losses, the Lightning module, loggers and the Hydra task."""
