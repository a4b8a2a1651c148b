"""gramr2: train and run reasoning generative reward models the GRAM-R² way (arXiv 2509.02492)."""

__version__ = "0.1.0"
