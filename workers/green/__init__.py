"""GREEN: an LLM judge of radiology reports (StanfordAIMI/GREEN-RadLlama2-7b), served in process."""

FAMILY = "green"
ADAPTER = "workers.green.adapter:GreenAdapter"
TINY = "workers.green.tiny:build"
CONTRACT = "workers.green.contract"
