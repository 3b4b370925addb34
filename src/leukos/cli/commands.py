"""CLI commands; each module registers its commands on leukos.cli.main.app."""
import leukos.cli.apheresis  # noqa: F401
import leukos.cli.screening  # noqa: F401  (leukos screen, leukos synth omop)
from leukos.cli import (
    core_commands,  # noqa: F401
    registry,  # noqa: F401,E402  (leukos patient / procedure / registry)
    service,  # noqa: F401
    validate,  # noqa: F401  (leukos validate)
)
