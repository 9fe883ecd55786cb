"""MedVAL: prompt, answer parser, engines and MedVAL-Bench scoring (pure Python, no torch)."""
