"""Built-in models: `echo` returns its input, to measure and test the platform itself."""

FAMILY = "builtin"
ADAPTER = "workers.builtin.adapter:EchoAdapter"
TINY = "workers.builtin.tiny:build"
CONTRACT = "workers.builtin.contract"
