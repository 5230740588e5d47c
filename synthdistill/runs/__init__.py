"""The run layer, beneath the stages: everything about a run folder and running steps in it.

- folder.py: outputs/<run>/, its manifest, and the writes that survive a kill (records appended and
  fsync'd, a torn last line dropped; files replaced atomically);
- steps.py: what a stage is (`Stage`), and the one runner that runs, resumes or skips each step by its
  fingerprint, for the pipeline's stages and the adversarial stage's rounds alike;
- context.py: the run's shared state, and the narrow view of it that a stage gets;
- decisions.py: review decisions (review.jsonl), applied whenever a stage's records are read;
- dataset.py: the kept records as a Hugging Face dataset (dataset/, export);
- view.py: a finished or running run folder as the review, inspect and export commands read it.
"""
