"""Training: `train` (sqz-train's run: a SqueezeNet trained on an image folder, saved with the
sidecars sqz-convert reads) on `core`, which sqz-compress's fine-tuning shares."""
