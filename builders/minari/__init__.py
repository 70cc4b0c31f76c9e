"""The minari TFDS builder."""
