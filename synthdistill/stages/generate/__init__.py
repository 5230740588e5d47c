"""generate: a teacher writes samples from a template (rationales, events, triples), or recorded ones.

stage.py holds the stage and its config; recorded.py turns completions a teacher already wrote (a data
column, a provider's batch output, an earlier export) into the same samples without calling a teacher;
recorded_checks.py checks them before a run. The entry point names `synthdistill.stages.generate:STAGE`
and the adversarial stage nests `GenerateConfig`, so both are re-exported here.
"""

from synthdistill.stages.generate.stage import PARSED_INPUTS, STAGE, GenerateConfig

__all__ = ["PARSED_INPUTS", "STAGE", "GenerateConfig"]
