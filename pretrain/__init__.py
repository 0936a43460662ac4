"""Self-supervised pretraining: methods, data, the training loop, collapse monitors, recipes."""
