"""The tosac version (written into tuning records and generated headers)."""
__version__ = "0.1.0"
