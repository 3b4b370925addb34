"""leukos: decision support for extreme leukocytosis.

leukos supports clinical decisions; it does not replace clinical judgement. It is not a
medical device.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
