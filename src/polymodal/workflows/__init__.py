"""What composes the heads: generative augmentation, the judges that train a classifier to
score generated images, generator evaluation, side-by-side comparison and the demo.

``polymodal.api`` never imports from here; the CLI and the service do.
"""
