"""CLI commands; each module registers its commands on leukos.cli.main.app."""
import leukos.cli.apheresis  # noqa: F401
from leukos.cli import (
    core_commands,  # noqa: F401
    service,  # noqa: F401
)
