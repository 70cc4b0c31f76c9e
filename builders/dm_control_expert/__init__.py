"""The dm_control_expert TFDS builder."""
