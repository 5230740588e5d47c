"""Stages: what records flow through, in the order a pipeline names them.

One module (or package, when a stage has helpers) per stage, each exporting `STAGE` (a `Stage` from
synthdistill/runs/steps.py), registered by name through the `synthdistill.stages` entry points:

- generate/: the teacher (or several, teachers.py) writes samples from a template (rationales, programs
  of thought, events, triples, instructions), or recorded completions (a published set, a batch job's
  output) enter as samples;
- self_consistency.py: votes over each record's samples, optionally asks again with the gold as a hint;
- filter.py: critics (synthdistill/critics/) keep or drop records, batch by batch;
- evolve.py, self_instruct/: grow new instructions from seeds (Evol-Instruct, Self-Instruct);
- select/: keeps a budget of records by random, coverage, difficulty or a mix of the two;
- train/: fine-tunes the student on the kept records with trl (sft.py), or on preference pairs (dpo.py);
- pairs/: preference pairs (teacher over student, correct over incorrect, judged) for dpo;
- adversarial/: the Lion loop, rounds of imitate, discriminate, grow and retrain after a train stage;
- star/: STaR's rounds, in which the newest student samples and the next one trains on what was right;
- evaluate/: scores the student, its base and the teacher on the held-out split.

Stages import downward only: the run layer (synthdistill/runs/), the teachers' engine, critics,
templates and records; never the pipeline, the CLI or another stage's module (adversarial and star
import other stages' configs only, to nest those stages in their rounds).
"""
