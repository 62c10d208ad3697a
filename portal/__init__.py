"""Accelerator Portal: governed access to de-identified clinical data for startups."""

__version__ = "0.1.0"
