"""Every route module; `create_app` includes each module's `router`, in this order."""

ROUTER_MODULES = [
    "service.routes.health",
    "service.routes.models",
    "service.routes.oip",
    "service.routes.roentgen",
    "service.routes.medvae",
    "service.routes.medval",
    "service.routes.srrg",
    "service.routes.merlin",
    "service.routes.green",
    "service.routes.openai",
    "service.routes.jobs",
]
