"""Validation of the assessment against a set of published cases with reference answers.

``parse_validation_set`` reads the JSON Lines format, ``validate`` assesses every case and
``score`` compares; ``render_markdown`` writes the report kept in docs/validation.md.
"""

from leukos.validation.dataset import Expected, ValidationCase, parse_validation_set
from leukos.validation.report import render_comparison, render_markdown
from leukos.validation.scoring import CaseResult, Rate, ValidationReport, score, validate

__all__ = ["CaseResult", "Expected", "Rate", "ValidationCase", "ValidationReport", "parse_validation_set",
           "render_comparison", "render_markdown", "score", "validate"]
