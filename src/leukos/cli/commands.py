"""CLI commands; each module registers its commands on leukos.cli.main.app."""
from leukos.cli import core_commands  # noqa: F401
from leukos.cli import screening  # noqa: E402,F401  (leukos screen, leukos synth omop)
