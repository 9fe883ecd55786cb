"""MedVAE: 2D and 3D medical autoencoders (images to small latents and back)."""

FAMILY = "medvae"
ADAPTER = "workers.medvae.adapter:MedVAEAdapter"
TINY = "workers.medvae.tiny:build"
CONTRACT = "workers.medvae.contract"
