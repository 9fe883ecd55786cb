"""The worker runtime: adapter base, OIP codec and clients, server, batcher, registry."""
