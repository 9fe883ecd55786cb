"""MedVAL: an evaluator LM that grades generated medical text (in process or on vLLM)."""

FAMILY = "medval"
ADAPTER = "workers.medval.adapter:MedVALAdapter"
TINY = "workers.medval.tiny:build"
CONTRACT = "workers.medval.contract"
