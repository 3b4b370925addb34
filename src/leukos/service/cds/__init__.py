"""CDS Hooks 2.0 services of leukos (https://cds-hooks.hl7.org/2.0/)."""

from leukos.service.cds.routes import router

__all__ = ["router"]
