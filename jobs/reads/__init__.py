"""Reading features: online for inference (serving), point-in-time for training, fresh slices."""
