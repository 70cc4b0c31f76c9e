"""The minari_dataset TFDS builder."""
