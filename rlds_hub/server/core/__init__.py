"""Configuration, errors and number conventions of the service."""
