"""CLI commands; each module registers its commands on leukos.cli.main.app."""
