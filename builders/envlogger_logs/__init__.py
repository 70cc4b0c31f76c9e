"""The envlogger_logs TFDS builder."""
