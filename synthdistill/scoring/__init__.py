"""Scoring: one reading of answers for every task type, shared by the filter, voting and evaluation.

- `task.py`: `TaskConfig` (the pipeline's `data.task`: type, labels, synonyms) and the label sets known
  without declaring them;
- `scorer.py`: `Scorer`, which decides a record's task type, puts an answer in its canonical form (what
  self_consistency votes on), reads the answer of a whole completion and judges it against the gold one;
- `checks.py`: what preflight refuses in the data (a `choices` field of the wrong shape, a gold answer
  that is none of its choices or labels).

Import from the modules: this package's `__init__` stays empty, since `config.py` (below the teachers
that `scorer.py` reaches through `parsing.py`) imports `task.py`.
"""
