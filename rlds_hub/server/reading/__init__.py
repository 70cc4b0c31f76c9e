"""Reading indexed datasets for the API through the core reader: opened datasets and
decoded episodes kept per process, step slices as JSON / Arrow / NPZ, image frames."""
