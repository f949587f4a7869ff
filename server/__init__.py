"""Porchlight: telehealth server for behavioral-health group programs."""

__version__ = "0.1.0"
