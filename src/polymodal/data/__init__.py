"""Data layer: reading tables, schema inference, cleaning, transforms, batches."""
