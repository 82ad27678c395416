"""polymodal.evaluate."""
