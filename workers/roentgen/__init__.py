"""RoentGen-v2: text and demographics to synthetic chest X-rays (Stable Diffusion 2.1-base)."""

FAMILY = "roentgen"
ADAPTER = "workers.roentgen.adapter:RoentgenAdapter"
TINY = "workers.roentgen.tiny:build"
CONTRACT = "workers.roentgen.contract"
