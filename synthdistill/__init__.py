"""synthdistill: distil large language models through their outputs."""
