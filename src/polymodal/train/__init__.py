"""polymodal.train."""
